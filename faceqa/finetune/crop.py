"""Face crops for training: the face the label is about, with some context, at one size.

A dataset label describes one face, but the photo may hold more of the scene than
the face. A dataset that boxes its faces (AffectNet's release) is cropped at its
box; otherwise, by default, the face is found with the embedded detector (UTKFace's
originals, RAF-DB's originals, any generic folder). Already-cropped datasets
(FairFace, RAF-DB aligned) can be trusted as they are and only resized. The cut
itself is `faceqa.crops.face_crop`, the one the VLM attribute engine uses at serving
time. Geometric AU cues come from the same face engine, for expression reasoning
targets on datasets with no AUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from faceqa.crops import MARGIN, SIZE, face_crop
from faceqa.datasets.readers import FaceRecord
from faceqa.images import load_image

CROP_MODES = ("detect", "trust")


class NoFace(ValueError):
    """The detector found no face where the dataset promises one."""


@dataclass(frozen=True)
class CropConfig:
    mode: str = "detect"  # "detect": find the face and cut it out; "trust": the image is already a face crop
    margin: float = MARGIN  # context added on each side, as a fraction of the face box's longer side
    size: int = SIZE  # side of the square output, in pixels (PaliGemma-224's input)

    def __post_init__(self) -> None:
        if self.mode not in CROP_MODES:
            raise ValueError(f"crop mode must be one of {', '.join(CROP_MODES)}, got {self.mode!r}")
        if self.margin < 0 or self.size < 8:
            raise ValueError("crop margin must be >= 0 and size >= 8")


@dataclass(frozen=True)
class Crop:
    rgb: np.ndarray
    action_units: dict[str, float] | None  # None when they were not asked for or no face was found


class FaceCropper:
    """Cuts the labelled face out of a photo; the engine's models load on first use, once per process."""

    def __init__(self, config: CropConfig):
        self.config = config

    @cached_property
    def _engine(self):
        from faceqa.faces.engine import EngineConfig, FaceEngine

        return FaceEngine(EngineConfig(threads=1))

    def of_record(self, record: FaceRecord, want_action_units: bool = False) -> Crop:
        """The crop of a dataset record's labelled face, decoded from its bytes or file (BadImage, NoFace)."""
        image = load_image(record.data if record.data is not None else record.image)
        return self(image, want_action_units=want_action_units, box=record.box)

    def __call__(self, rgb: np.ndarray, want_action_units: bool = False,
                 box: tuple[float, float, float, float] | None = None) -> Crop:
        """The crop of the labelled face: at the dataset's `box` when it gives one, else as the mode says."""
        detections = []
        if box is None and (self.config.mode == "detect" or want_action_units):
            detections = self._engine.detector.detect(rgb)
        # The labelled face is the most prominent one: largest box, confidence breaking ties.
        face = max(detections, key=lambda d: (d.box[2] * d.box[3], d.score), default=None)
        if box is not None:
            crop = face_crop(rgb, box, self.config.margin, self.config.size)
        elif self.config.mode == "detect":
            if face is None:
                raise NoFace("no face detected")
            crop = face_crop(rgb, face.box, self.config.margin, self.config.size)
        else:
            crop = face_crop(rgb, (0, 0, rgb.shape[1], rgb.shape[0]), 0.0, self.config.size)
        landmark_box = box if box is not None else (face.box if face is not None else None)
        units = None
        if want_action_units and landmark_box is not None:
            from faceqa.faces.action_units import action_units
            from faceqa.faces.landmarks import points

            units = action_units(points(self._engine.landmarks.shape(rgb, tuple(round(v) for v in landmark_box))))
        return Crop(crop, units)
