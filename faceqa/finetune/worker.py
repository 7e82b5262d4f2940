"""The per-face work of a dataset build: read, decode, crop, hash, encode, write Q&A.

Everything that costs CPU per face happens here, so a build scales with workers: in
this process (`faces`) or in Ray actors (`ray_stages`), which run the same `FaceJob`.
The driver only deduplicates, makes collages and writes shards. This module imports
neither `datasets`, torch nor Ray, so workers start fast.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from faceqa.datasets.readers import FaceRecord
from faceqa.images import BadImage

from .crop import CropConfig, FaceCropper, NoFace
from .dedup import dhash
from .splits import assign_split
from .tasks import Sample, dataset_action_units, face_samples


@dataclass(frozen=True)
class FaceJobConfig:
    crop: CropConfig = field(default_factory=CropConfig)
    tasks: tuple[str, ...] = ("attribute", "attributes", "reasoning", "composite")
    split: str = "auto"
    val_fraction: float = 0.1
    seed: int = 0
    hash_size: int = 8
    engine_action_units: bool = True  # geometric AU cues from the face engine when a dataset has none
    jpeg_quality: int = 95


@dataclass(frozen=True)
class Face:
    """One usable face: its crop as JPEG, where it goes, what is asked about it."""

    key: str
    source: str
    split: str
    labels: dict[str, str]
    jpeg: bytes
    phash: int
    samples: list[Sample]


@dataclass(frozen=True)
class Failure:
    key: str
    path: str
    reason: str


class FaceJob:
    def __init__(self, config: FaceJobConfig):
        self.config = config
        self.cropper = FaceCropper(config.crop)

    def __call__(self, record: FaceRecord) -> Face | Failure:
        try:
            return self._face(record)
        except (BadImage, NoFace) as error:
            return Failure(record.key, str(record.image), str(error))
        except Exception as error:  # one broken row must not sink the build; it is reported with its path
            return Failure(record.key, str(record.image), f"{type(error).__name__}: {error}")

    def _face(self, record: FaceRecord) -> Face:
        c = self.config
        units = dataset_action_units(record.extra)
        geometric = False
        want_engine_units = ("reasoning" in c.tasks and "emotion" in record.labels and units is None
                             and c.engine_action_units)
        crop = self.cropper.of_record(record, want_action_units=want_engine_units)
        if units is None and crop.action_units is not None:
            units, geometric = crop.action_units, True
        split = assign_split(record.split, record.identity or record.key, c.split, c.val_fraction, c.seed)
        samples = face_samples(record.key, record.labels, c.tasks, c.seed, units, geometric)
        return Face(record.key, record.source, split, dict(record.labels), encode_jpeg(crop.rgb, c.jpeg_quality),
                    dhash(crop.rgb, c.hash_size), samples)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def faces(records: Iterable[FaceRecord], config: FaceJobConfig) -> Iterator[Face | Failure]:
    """The one-machine path: every record's result in input order, models loaded once."""
    job = FaceJob(config)
    return map(job, records)
