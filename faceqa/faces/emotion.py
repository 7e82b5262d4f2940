"""Facial expression, 7 FER2013 classes, from the quantized mini-Xception shipped in `fer`.

The network's classes are mapped onto the AffectNet-8 names of the shared
taxonomy; it has no Contempt class, so it never claims Contempt.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from faceqa.artifacts import resolve

from .base import AttributeModel, Attributes, FaceView, label_score

LABELS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral")  # FER2013 output order
MARGIN = 0.1  # the crop the model works best on: the detector box plus 10% on each side


class FerEmotion(AttributeModel):
    attributes = ("emotion",)
    source = "fer mini-Xception (FER2013, 7 classes)"

    def __init__(self, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter  # here: loading LiteRT is for those who use the model

        with _quiet_stderr():  # LiteRT announces its XNNPACK delegate on fd 2, into users' terminals
            self._interpreter = Interpreter(model_path=str(resolve("emotion")), num_threads=threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def probabilities(self, face: FaceView) -> np.ndarray:
        """Class probabilities in LABELS order for one face."""
        x, y, w, h = face.box
        height, width = face.gray.shape
        x0, y0 = max(0, int(x - MARGIN * w)), max(0, int(y - MARGIN * h))
        x1, y1 = min(width, int(x + w * (1 + MARGIN))), min(height, int(y + h * (1 + MARGIN)))
        crop = cv2.resize(face.gray[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
        self._interpreter.set_tensor(self._input, (crop / 127.5 - 1.0)[None, :, :, None])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[0].astype(np.float64)

    def predict(self, faces: Sequence[FaceView]) -> list[Attributes]:
        return [{"emotion": label_score(LABELS, self.probabilities(f))} for f in faces]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
