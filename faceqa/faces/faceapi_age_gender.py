"""Apparent age (years) and gender from @vladmandic/face-api's AgeGenderNet (TinyXception, rebuilt as ONNX).

One pass gives both: a regressed age in years and a softmax over [male, female], on the same
112x112 aligned-rect chip as face-api's expression net (`faceapi_chip`). The age is a single
number, so the age group's confidence comes from the authors' own published test error: face-api's
TUTORIAL.md gives the mean absolute error per age range on its held-out splits (1.52 years at 0-3 ...
9.91 at 80+). We read the error as Gaussian (sigma = MAE * sqrt(pi / 2)) around the estimate and take
the mass inside the estimate's FairFace group. Nothing here is fitted to our benchmark photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from faceqa.prompts.taxonomy import AGE_GROUPS, age_group
from faceqa.schema import AgeEstimate

from .age_gender import session
from .base import AttributeModel, Attributes, FaceView, label_score
from .faceapi_expression import faceapi_chip

GENDER_LABELS = ("Male", "Female")  # column order of the network's gender output
# face-api's published test MAE by age range: (upper end of the range in years, MAE in years).
PUBLISHED_MAE = ((3, 1.52), (8, 3.06), (18, 4.82), (28, 4.99), (40, 5.43), (60, 4.94), (80, 6.17), (math.inf, 9.91))
# Each FairFace group as years [low, high): ages are floored, and the first group takes the error's mass below 0.
_LOWS = [min(y for y in range(130) if age_group(y) == group) for group in AGE_GROUPS]
_BOUNDS = list(zip([-math.inf, *_LOWS[1:]], [*_LOWS[1:], math.inf], strict=True))


def age_estimate(years: float) -> AgeEstimate:
    """The group of a regressed age, with the Gaussian mass of the authors' stated error inside it."""
    mae = next(error for upper, error in PUBLISHED_MAE if years <= upper)
    sigma = mae * math.sqrt(math.pi / 2)
    group = age_group(years)
    low, high = _BOUNDS[AGE_GROUPS.index(group)]
    mass = _normal_cdf((high - years) / sigma) - _normal_cdf((low - years) / sigma)
    return AgeEstimate(years=round(years, 1), group=group, score=round(min(max(mass, 0.0), 1.0), 4))


def _normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2))) if math.isfinite(z) else float(z > 0)


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
            {"age": age_estimate(float(y)), "gender": label_score(GENDER_LABELS, g)}
            for y, g in zip(years, genders, strict=True)
        ]
