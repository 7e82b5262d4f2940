"""dlib shape predictors: 68 landmarks for geometry, 5 landmarks for the age/gender face chips."""

from __future__ import annotations

import dlib
import numpy as np

from faceqa.artifacts import resolve


def _rectangle(box: tuple[float, float, float, float]) -> dlib.rectangle:
    """The box dlib's predictors were trained on, from a YuNet box.

    dlib trained its shape predictors on its HOG detector's boxes: square, about
    1.1x YuNet's width, centred a little lower (YuNet includes the forehead).
    Measured on the example portraits; feeding YuNet's box as-is moved the
    astronaut's apparent age by four years.
    """
    x, y, w, h = box
    side, cx, cy = 1.1 * w, x + w / 2, y + 0.55 * h
    return dlib.rectangle(round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))


class ShapePredictor:
    """One dlib shape predictor behind a model slot ('landmarks' for 68 points, 'chips' for 5)."""

    def __init__(self, slot: str):
        self._predictor = dlib.shape_predictor(str(resolve(slot)))

    def shape(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> dlib.full_object_detection:
        return self._predictor(rgb, _rectangle(box))


def points(shape: dlib.full_object_detection) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def chip(rgb: np.ndarray, shape: dlib.full_object_detection, size: int, padding: float = 0.2) -> np.ndarray:
    """An aligned face chip, the way dlib's age/gender networks were trained to see faces."""
    return np.ascontiguousarray(dlib.extract_image_chip(rgb, dlib.get_face_chip_details(shape, size, padding)))
