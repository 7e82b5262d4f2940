"""The plug-in point of the face engine: one interface for every per-face attribute model.

The engine finds faces and their landmarks once, wraps each as a `FaceView` (the image plus everything
known about that face), and hands the whole list to each `AttributeModel`. A model prepares its own
input from the view (dlib chips, a landmark box, a grayscale crop: whatever its authors trained on),
runs once per batch, and returns one `Attributes` dict per face, filling the report fields it names in
`attributes`. Adding a model means one file with one such class and one line in `engine.MODELS`;
engine.py's logic does not change. Like deepface's `Demography`, but batched and typed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import dlib
import numpy as np

from faceqa.schema import AgeEstimate, LabelScore

Attributes = dict[str, AgeEstimate | LabelScore]  # report field ("age", "gender", "emotion") -> its value


@dataclass(frozen=True)
class FaceView:
    """One detected face as models see it; `rgb` is the whole image (H x W x 3, uint8)."""

    rgb: np.ndarray
    box: tuple[float, float, float, float]  # detector box x, y, w, h in image pixels
    landmarks5: np.ndarray  # 5x2 from the detector
    landmarks68: np.ndarray  # 68x2, iBUG order (dlib)
    shape5: dlib.full_object_detection  # dlib's 5-point shape, for dlib-style face chips
    gray: np.ndarray  # the whole image in grayscale (H x W, uint8), shared by the image's faces


class AttributeModel(ABC):
    """A model that fills some of a face report's attribute fields for a batch of faces."""

    attributes: tuple[str, ...]  # the report fields it fills
    source: str  # what `FaceReport.sources` says produced them

    @abstractmethod
    def predict(self, faces: Sequence[FaceView]) -> list[Attributes]:
        """One dict per face, in order, with exactly the keys in `attributes`."""


def label_score(labels: Sequence[str], probabilities: np.ndarray) -> LabelScore:
    """The most likely label, its probability and the whole distribution (normalised, rounded)."""
    total = float(probabilities.sum()) or 1.0
    scores = {label: round(float(p) / total, 4) for label, p in zip(labels, probabilities, strict=True)}
    best = max(scores, key=lambda label: scores[label])
    return LabelScore(label=best, score=scores[best], scores=scores)
