"""Face crops for training: the face the label is about, with some context, at one size.

A dataset label describes one face, but the photo may hold more of the scene than
the face (UTKFace's originals, RAF-DB's originals, any generic folder), so by default
the face is found with the embedded detector and cut out square with a margin, as
FairFace itself did (padding 0.25). Already-cropped datasets (FairFace, AffectNet,
RAF-DB aligned) can be trusted as they are and only resized. Geometric AU cues come
from the same face engine, for expression reasoning targets on datasets with no AUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

CROP_MODES = ("detect", "trust")


class NoFace(ValueError):
    """The detector found no face where the dataset promises one."""


@dataclass(frozen=True)
class CropConfig:
    mode: str = "detect"  # "detect": find the face and cut it out; "trust": the image is already a face crop
    margin: float = 0.25  # context added on each side, as a fraction of the face box's longer side
    size: int = 224  # side of the square output, in pixels (PaliGemma-224's input)

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

    def __call__(self, rgb: np.ndarray, want_action_units: bool = False) -> Crop:
        detections = []
        if self.config.mode == "detect" or want_action_units:
            detections = self._engine.detector.detect(rgb)
        # The labelled face is the most prominent one: largest box, confidence breaking ties.
        face = max(detections, key=lambda d: (d.box[2] * d.box[3], d.score), default=None)
        if self.config.mode == "detect":
            if face is None:
                raise NoFace("no face detected")
            square = _square_with_margin(face.box, self.config.margin)
        else:
            square = _square_with_margin((0, 0, rgb.shape[1], rgb.shape[0]), 0.0)
        units = None
        if want_action_units and face is not None:
            from faceqa.faces.action_units import action_units
            from faceqa.faces.landmarks import points

            units = action_units(points(self._engine.landmarks.shape(rgb, face.box)))
        return Crop(_cut(rgb, square, self.config.size), units)


def _square_with_margin(box: tuple[float, float, float, float], margin: float) -> tuple[int, int, int]:
    """(left, top, side) of the square centred on `box`, its longer side grown by `margin` on each side."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), max(1, round(side))


def _cut(rgb: np.ndarray, square: tuple[int, int, int], size: int) -> np.ndarray:
    """The square region resized to `size`; parts outside the photo are filled by edge replication.

    Replicated edges rather than black bars: a black border is a shortcut feature
    (faces near the photo's edge) that a model would otherwise learn.
    """
    left, top, side = square
    height, width = rgb.shape[:2]
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:
        rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        left, top = left + pad, top + pad
    region = Image.fromarray(np.ascontiguousarray(rgb[top:top + side, left:left + side]))
    return np.asarray(region.resize((size, size), Image.Resampling.BILINEAR))
