"""Apparent age (years) and gender from dlib's Cydral networks, run with onnxruntime.

The networks expect RGB chips aligned by dlib's 5-point predictor with 0.2
padding and normalised as (byte - channel mean) / 256; other alignments shift
the age by several years (28 vs 33 on the astronaut), so we keep theirs.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from faceqa.artifacts import resolve

_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
AGE_CHIP, GENDER_CHIP = 64, 32
GENDER_LABELS = ("Female", "Male")  # column order of the network's output


def _session(slot: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(resolve(slot)), sess_options=options, providers=["CPUExecutionProvider"])


def _batch(chips: list[np.ndarray]) -> np.ndarray:
    values = np.stack(chips).astype(np.float32) - _MEANS
    values /= np.float32(256.0)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


class AgeModel:
    def __init__(self, threads: int = 1):
        self._session = _session("age", threads)

    def predict(self, chips: list[np.ndarray]) -> np.ndarray:
        """Probabilities over 81 age classes (0.25, 1, 2, ..., 80 years), one row per 64x64 chip."""
        return self._session.run(None, {"images": _batch(chips)})[0].astype(np.float64)


class GenderModel:
    def __init__(self, threads: int = 1):
        self._session = _session("gender", threads)

    def predict(self, chips: list[np.ndarray]) -> np.ndarray:
        """Probabilities [female, male], one row per 32x32 chip."""
        return self._session.run(None, {"images": _batch(chips)})[0].astype(np.float64)
