"""The per-row work of a dataset build: read, decode, crop, hash, encode, write Q&A, write shards.

Everything that costs CPU per row happens in a `FaceStage`, so a build scales with
workers: in this process or in Ray actors (`ray_stages`), which run the same class.
`FaceStage.faces` turns a batch of records into what the driver decides on (`FaceInfo`:
key, split, labels, hash; or a `Failure`) and, kept apart so they need not travel to
the driver, the batch's rows as an Arrow table and its face crops. `FaceStage.shard`
makes a shard from the driver's plan (`rows.py`: rows of the kept faces, the collages
it chose) and writes its Parquet files into the output folder (`store.write_shard`),
so the rows never pass through the driver, which only deduplicates, chooses who is in
a collage and commits the written files in order. Neither torch nor Ray is imported
here, so workers start fast.
"""

from __future__ import annotations

import itertools
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceqa.crops import JPEG_QUALITY, encode_jpeg
from faceqa.datasets.readers import FaceRecord
from faceqa.images import BadImage

from .crop import CropConfig, FaceCropper, NoFace
from .dedup import dhash
from .rows import Plan, assemble, face_rows
from .splits import assign_split
from .store import SETTINGS, Written, shard_table, write_shard
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
    jpeg_quality: int = JPEG_QUALITY


@dataclass(frozen=True)
class FaceInfo:
    """What the driver sees of a usable face: enough to deduplicate, count and pick collages; `rows` of its own."""

    key: str
    source: str
    split: str
    labels: dict[str, str]
    phash: int
    rows: int


@dataclass(frozen=True)
class Face:
    """One usable face as the stage holds it: what the driver sees, its crop as JPEG, a sample per row."""

    info: FaceInfo
    jpeg: bytes
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
        info = FaceInfo(record.key, record.source, split, dict(record.labels), dhash(crop.rgb, c.hash_size),
                        len(samples))
        return Face(info, encode_jpeg(crop.rgb, c.jpeg_quality), samples)


def chunks(records: Iterable[FaceRecord], size: int) -> Iterator[list[FaceRecord]]:
    """Records in lists of `size` (the last one shorter), in order."""
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


Batch = tuple[list[FaceInfo | Failure], Any, list[bytes]]  # per record; the rows (pa.Table); the usable crops


class FaceStage:
    """The per-row work of the build writing `out`: one FaceJob (face models loaded once), here or as a Ray actor."""

    def __init__(self, config: FaceJobConfig, out: Path):
        self.config, self.out = config, out
        self.job = FaceJob(config)

    def sees_output(self) -> tuple[str, bool]:
        """This node's name, and whether the build's output folder is here (the driver wrote its settings first)."""
        return platform.node(), (self.out / SETTINGS).is_file()

    def faces(self, records: list[FaceRecord]) -> Batch:
        """Per record a FaceInfo or Failure, in order; the usable faces' rows, in order; their JPEG crops."""
        infos: list[FaceInfo | Failure] = []
        rows: list[dict] = []
        crops: list[bytes] = []
        for record in records:
            result = self.job(record)
            if isinstance(result, Failure):
                infos.append(result)
                continue
            infos.append(result.info)
            rows.extend(face_rows(result))
            crops.append(result.jpeg)
        return infos, shard_table(rows), crops

    def shard(self, number: int, plan: Plan, *objects: Any) -> Written:
        """Write shard `number` as `plan` describes; `objects` are the batches' row tables and crops it refers to."""
        return write_shard(self.out, number, assemble(plan, objects, self.config))
