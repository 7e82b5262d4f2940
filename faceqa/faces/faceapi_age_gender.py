"""Apparent age (years) and gender from @vladmandic/face-api's AgeGenderNet (TinyXception, rebuilt as ONNX).

One pass gives both: a regressed age in years and a softmax over [male, female], on the same
112x112 aligned-rect chip as face-api's expression net (`faceapi_chip`). The age is a single
number with no distribution, so its group comes without a confidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceqa.prompts.taxonomy import age_group
from faceqa.schema import AgeEstimate

from .age_gender import session
from .base import AttributeModel, Attributes, FaceView, label_score
from .faceapi_expression import faceapi_chip

GENDER_LABELS = ("Male", "Female")  # column order of the network's gender output


class FaceApiAgeGender(AttributeModel):
    attributes = ("age", "gender")
    source = "face-api AgeGenderNet"

    def __init__(self, threads: int = 1):
        self._session = session("faceapi_age_gender", threads)

    def outputs(self, faces: Sequence[FaceView]) -> tuple[np.ndarray, np.ndarray]:
        """Years (one per face) and gender probabilities in GENDER_LABELS order (one row per face)."""
        years, gender = self._session.run(None, {"images": np.stack([faceapi_chip(f) for f in faces])})
        return np.clip(years[:, 0].astype(np.float64), 0.0, None), gender.astype(np.float64)

    def predict(self, faces: Sequence[FaceView]) -> list[Attributes]:
        years, genders = self.outputs(faces)
        return [
            {"age": AgeEstimate(years=round(float(y), 1), group=age_group(float(y))),
             "gender": label_score(GENDER_LABELS, g)}
            for y, g in zip(years, genders, strict=True)
        ]
