"""Apparent age (years) and gender from dlib's Cydral networks, run with onnxruntime.

The networks expect RGB chips aligned by dlib's 5-point predictor with 0.2
padding and normalised as (byte - channel mean) / 256; other alignments shift
the age by several years (28 vs 33 on the astronaut), so we keep theirs. Each
chip and its mirror image are both predicted and averaged (mirror test-time
augmentation): the age network moves by years with a one-pixel shift of its chip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceqa.artifacts import resolve
from faceqa.prompts.taxonomy import AGE_GROUPS, age_group
from faceqa.schema import AgeEstimate

from .base import AttributeModel, Attributes, FaceView, label_score
from .landmarks import chip

if TYPE_CHECKING:
    import onnxruntime as ort

_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
AGE_CHIP, GENDER_CHIP = 64, 32
GENDER_LABELS = ("Female", "Male")  # column order of the network's output

# The age network's 81 classes (0.25, 1, ..., 80 years) and the FairFace group of each. Its output is
# spiky (it was trained for its expected value: the astronaut gets 0.50 at 28 years and 0.16 at 48), so
# the group's confidence is its mass after spreading each class over neighbouring years (sigma 5 years).
CLASS_YEARS = np.array([0.25, *range(1, 81)])
_GROUP_OF_CLASS = np.array([AGE_GROUPS.index(age_group(y)) for y in CLASS_YEARS])
_SPREAD = np.exp(-0.5 * ((CLASS_YEARS[:, None] - CLASS_YEARS[None, :]) / 5.0) ** 2)
_SPREAD /= _SPREAD.sum(axis=1, keepdims=True)


def session(slot: str, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session on one model slot's file, with the engine's thread budget."""
    import onnxruntime as ort  # here, not at the top: a build's workers that only detect faces never load it

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(resolve(slot)), sess_options=options, providers=["CPUExecutionProvider"])


def _batch(chips: list[np.ndarray]) -> np.ndarray:
    values = np.stack(chips).astype(np.float32) - _MEANS
    values /= np.float32(256.0)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


def _mirrored_mean(run: ort.InferenceSession, chips: list[np.ndarray]) -> np.ndarray:
    """The network's output per chip, averaged with its output on the mirrored chip."""
    batch = _batch(chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips])
    out = run.run(None, {"images": batch})[0].astype(np.float64)
    return (out[: len(chips)] + out[len(chips):]) / 2


def age_estimate(probabilities: np.ndarray) -> AgeEstimate:
    """Expected years, their FairFace group, and the group's (spread) mass as its confidence."""
    years = float(probabilities @ CLASS_YEARS)
    group = age_group(years)
    mass = float((probabilities @ _SPREAD)[AGE_GROUPS.index(group) == _GROUP_OF_CLASS].sum())
    return AgeEstimate(years=round(years, 1), group=group, score=round(min(mass, 1.0), 4))


class DlibAge(AttributeModel):
    attributes = ("age",)
    source = "dlib Cydral age predictor v1"

    def __init__(self, threads: int = 1):
        self._session = session("age", threads)

    def probabilities(self, faces: Sequence[FaceView]) -> np.ndarray:
        """Probabilities over 81 age classes (0.25, 1, 2, ..., 80 years), one row per face."""
        return _mirrored_mean(self._session, [chip(f.rgb, f.shape5, AGE_CHIP) for f in faces])

    def predict(self, faces: Sequence[FaceView]) -> list[Attributes]:
        return [{"age": age_estimate(p)} for p in self.probabilities(faces)]


class DlibGender(AttributeModel):
    attributes = ("gender",)
    source = "dlib Cydral gender classifier v1"

    def __init__(self, threads: int = 1):
        self._session = session("gender", threads)

    def probabilities(self, faces: Sequence[FaceView]) -> np.ndarray:
        """Probabilities in GENDER_LABELS order, one row per face."""
        return _mirrored_mean(self._session, [chip(f.rgb, f.shape5, GENDER_CHIP) for f in faces])

    def predict(self, faces: Sequence[FaceView]) -> list[Attributes]:
        return [{"gender": label_score(GENDER_LABELS, p)} for p in self.probabilities(faces)]
