"""The embedded face engine: photo in, one FaceReport per face out, all offline on the CPU.

detect (YuNet) -> 68 landmarks (dlib) -> pose, geometric AU cues, quality
               -> 5-point shape (dlib) -> FaceView per face -> attribute models (faceqa.faces.base)
The attribute models are chosen by name from MODELS (`EngineConfig.models`); each fills the report
fields it names, and every field must be filled by exactly one model. Models load lazily, once per
engine, so a batch pays for them once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from faceqa.images import BadImage, load_image
from faceqa.schema import FaceReport, ImageError, ImageInfo, ImageReport, Quality

from .action_units import action_units
from .age_gender import DlibAge, DlibGender
from .base import AttributeModel, Attributes, FaceView
from .detector import Detection, YuNetDetector
from .emotion import FerEmotion
from .faceapi_age_gender import FaceApiAgeGender
from .faceapi_expression import FaceApiExpression
from .identity import IdentityModel
from .landmarks import ShapePredictor, points
from .pose import head_pose
from .quality import assess
from .uncertainty import temper_child_gender

ATTRIBUTES = ("age", "gender", "emotion")

# Every attribute model the engine can run, by name: its constructor takes the thread budget.
MODELS: dict[str, Callable[[int], AttributeModel]] = {
    "dlib-age": DlibAge,
    "dlib-gender": DlibGender,
    "fer-emotion": FerEmotion,
    "faceapi-age-gender": FaceApiAgeGender,
    "faceapi-expression": FaceApiExpression,
}
DEFAULT_MODELS = ("faceapi-age-gender", "faceapi-expression")  # chosen on bench/bench_accuracy.py

GEOMETRIC_AU_SOURCE = "faceqa geometric AU cues (68 landmarks vs. mean 300-W face)"  # the engine's AUs' provenance
SOURCES = {
    "detection": "YuNet 2023mar int8 (OpenCV Zoo)",
    "landmarks68": "dlib shape_predictor_68_face_landmarks",
    "action_units": GEOMETRIC_AU_SOURCE,
}


@dataclass
class EngineConfig:
    threads: int = 1
    detection_threshold: float = 0.6
    detection_max_side: int = 640
    models: tuple[str, ...] = DEFAULT_MODELS  # names in MODELS; together they fill age, gender and emotion


class FaceEngine:
    def __init__(self, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        cv2.setNumThreads(self.config.threads)
        unknown = [name for name in self.config.models if name not in MODELS]
        if unknown:
            raise ValueError(f"unknown attribute model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")

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
    def attribute_models(self) -> list[AttributeModel]:
        models = [MODELS[name](self.config.threads) for name in self.config.models]
        filled = [attribute for model in models for attribute in model.attributes]
        if sorted(filled) != sorted(ATTRIBUTES):
            raise ValueError(f"models {', '.join(self.config.models)} fill {', '.join(filled)}; "
                             f"each of {', '.join(ATTRIBUTES)} needs exactly one model")
        return models

    @cached_property
    def identity(self) -> IdentityModel:
        return IdentityModel()

    def load(self) -> FaceEngine:
        """Load every model now (the API and benchmarks want start-up cost paid up front)."""
        _ = self.detector, self.landmarks, self.chips, self.attribute_models
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

    def views(self, rgb: np.ndarray, detections: list[Detection], gray: np.ndarray | None = None) -> list[FaceView]:
        """What the attribute models see of each detected face (landmarks found once, here)."""
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if gray is None else gray
        return [
            FaceView(rgb=rgb, box=d.box, landmarks5=d.landmarks5, landmarks68=points(self.landmarks.shape(rgb, d.box)),
                     shape5=self.chips.shape(rgb, d.box), gray=gray)
            for d in detections
        ]

    def attributes(self, faces: list[FaceView]) -> list[Attributes]:
        """Every attribute model's output merged per face: {"age": ..., "gender": ..., "emotion": ...}."""
        merged: list[Attributes] = [{} for _ in faces]
        for model in self.attribute_models:
            for face, values in zip(merged, model.predict(faces), strict=True):
                face.update(values)
        return [temper_child_gender(face) for face in merged]

    def _describe(self, rgb: np.ndarray, detections: list[Detection], embeddings: bool) -> list[FaceReport]:
        if not detections:
            return []
        height, width = rgb.shape[:2]
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        views = self.views(rgb, detections, gray)
        sources = dict(SOURCES) | {a: m.source for m in self.attribute_models for a in m.attributes}
        faces = []
        for index, (det, view, values) in enumerate(zip(detections, views, self.attributes(views), strict=True),
                                                    start=1):
            size, sharpness, note = assess(gray, det.box)
            face = FaceReport(
                id=index,
                box=(int(round(det.box[0])), int(round(det.box[1])), int(round(det.box[2])), int(round(det.box[3]))),
                score=round(min(max(det.score, 0.0), 1.0), 4),
                landmarks5=_rounded(det.landmarks5),
                landmarks68=_rounded(view.landmarks68),
                action_units=action_units(view.landmarks68),
                pose=head_pose(view.landmarks68, width, height),
                quality=Quality(face_size=size, sharpness=round(sharpness, 1), note=note),
                sources=sources,
                **values,
            )
            if embeddings:
                face.embedding = self.embed(rgb, face)
            faces.append(face)
        return faces


def _rounded(array: np.ndarray) -> list[tuple[float, float]]:
    return [(round(float(x), 1), round(float(y), 1)) for x, y in array]
