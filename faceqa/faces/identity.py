"""Identity embeddings (SFace) for "are these the same person?", computed only on request."""

from __future__ import annotations

import cv2
import numpy as np

from faceqa.artifacts import resolve

SAME_PERSON_COSINE = 0.363  # OpenCV's published SFace threshold for cosine similarity


class IdentityModel:
    def __init__(self):
        self._net = cv2.FaceRecognizerSF.create(str(resolve("identity")), "")

    def embed(self, rgb: np.ndarray, box: tuple[float, float, float, float], landmarks5: np.ndarray) -> np.ndarray:
        """L2-normalised 128-d embedding of one face, aligned by its five landmarks."""
        row = np.array([*box, *landmarks5.reshape(-1), 1.0], dtype=np.float32)[None]
        aligned = self._net.alignCrop(np.ascontiguousarray(rgb[:, :, ::-1]), row)
        feature = self._net.feature(aligned)[0].astype(np.float64)
        return feature / (np.linalg.norm(feature) or 1.0)


def same_person(similarity: float) -> bool:
    """The one match rule (OpenCV's for SFace): the same identity at or above the threshold."""
    return similarity >= SAME_PERSON_COSINE


def cosine(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / ((np.linalg.norm(a) * np.linalg.norm(b)) or 1.0))
