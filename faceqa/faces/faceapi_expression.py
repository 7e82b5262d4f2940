"""Facial expression, 7 classes, from @vladmandic/face-api's FaceExpressionNet (rebuilt as ONNX).

face-api runs its expression and age/gender nets on the face's *aligned rect*: the bounding box of
its 68 landmarks grown by 20% (10% each side), cut from the image, zero-padded to a centred square
and resized bilinearly to 112x112 RGB (`FaceLandmarks.align`, `extractFaceTensors`, `toBatchTensor`).
Our 68 landmarks (dlib, iBUG order) are the same points, so `faceapi_chip` reproduces that input.
The net has no Contempt class, so it never claims Contempt.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .age_gender import session
from .base import AttributeModel, Attributes, FaceView, label_score

INPUT_SIZE = 112  # face-api's chip side, which faceapi_build's graphs take

# face-api's FACE_EXPRESSION_LABELS (neutral, happy, sad, angry, fearful, disgusted, surprised) in our taxonomy
LABELS = ("Neutral", "Happiness", "Sadness", "Anger", "Fear", "Disgust", "Surprise")
PADDING = 0.2  # face-api's minBoxPadding


def faceapi_chip(face: FaceView) -> np.ndarray:
    """The 112x112 RGB float chip face-api's nets expect, channels first."""
    low, high = face.landmarks68.min(axis=0), face.landmarks68.max(axis=0)
    size = high - low
    low, high = low - size * PADDING / 2, high + size * PADDING / 2
    height, width = face.rgb.shape[:2]
    x0, y0 = max(0, int(low[0])), max(0, int(low[1]))
    x1, y1 = min(width, max(x0 + 1, int(high[0]))), min(height, max(y0 + 1, int(high[1])))
    crop = face.rgb[y0:y1, x0:x1].astype(np.float32)
    rows, cols = crop.shape[:2]
    diff = abs(rows - cols)
    after = round(diff * 0.5)
    pad = ((0, 0), (diff - after, after), (0, 0)) if rows > cols else ((diff - after, after), (0, 0), (0, 0))
    square = np.pad(crop, pad)
    chip = cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(chip.transpose(2, 0, 1))


class FaceApiExpression(AttributeModel):
    attributes = ("emotion",)
    source = "face-api FaceExpressionNet (7 classes)"

    def __init__(self, threads: int = 1):
        self._session = session("faceapi_expression", threads)

    def probabilities(self, faces: Sequence[FaceView]) -> np.ndarray:
        """Probabilities in LABELS order, one row per face."""
        batch = np.stack([faceapi_chip(f) for f in faces])
        return self._session.run(None, {"images": batch})[0].astype(np.float64)

    def predict(self, faces: Sequence[FaceView]) -> list[Attributes]:
        return [{"emotion": label_score(LABELS, p)} for p in self.probabilities(faces)]
