"""The embedded face engine as a predictor: the largest face's attributes against the labels.

Dataset images hold one subject, sometimes with bystanders; the largest face is the
labelled one. No face is an unanswered prediction (wrong), not an error: the engine
failed on a usable image. The engine analyses an image once for all its tasks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput, encoded_image
from faceqa.images import BadImage
from faceqa.schema import FaceReport, ImageReport

RECENT = 64


class EngineVsLabels(Predictor):
    tasks = ("gender", "age_group", "emotion")  # the embedded engine has no race model

    def __init__(self, engine: Any = None, name: str = "faceqa-embedded"):
        if engine is None:
            from faceqa.faces.engine import FaceEngine

            engine = FaceEngine().load()
        self.engine, self.name = engine, name
        self._lock = threading.Lock()  # the engine's models are not shared across threads
        self._recent: OrderedDict[str, tuple[ImageReport, float]] = OrderedDict()

    def _analyze(self, item: FaceRecord) -> tuple[ImageReport, float]:
        with self._lock:
            if item.key in self._recent:
                return self._recent[item.key]
            started = time.perf_counter()
            try:
                report = self.engine.analyze(encoded_image(item))
            except BadImage as error:
                raise UnusableInput(str(error)) from None
            self._recent[item.key] = (report, time.perf_counter() - started)
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            return self._recent[item.key]

    def describe(self) -> dict[str, Any]:
        from faceqa.artifacts import REGISTRY

        return {
            "name": self.name,
            "kind": "faceqa embedded face engine (offline, CPU)",
            "components": [
                {"task": a.task, "origin": a.origin, "licence": a.licence, "trained_on": a.trained_on or "not stated",
                 **({"note": a.note} if a.note else {})}
                for a in REGISTRY.values()
            ],
            "training_data": "Per component, as its authors state it: "
            + "; ".join(f"{a.slot}: {a.trained_on or 'not stated'}" for a in REGISTRY.values()),
        }

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        report, latency = self._analyze(item)
        if not report.faces:
            return Prediction(None, latency, reason="no face detected")
        face = max(report.faces, key=lambda f: f.area)
        return _attribute(face, task, latency)


def _attribute(face: FaceReport, task: str, latency: float) -> Prediction:
    if task == "age_group":
        if face.age is None:
            return Prediction(None, latency, reason="engine gave no age")
        return Prediction(face.age.group, latency, years=face.age.years)
    value = getattr(face, task)
    if value is None:
        return Prediction(None, latency, reason=f"engine gave no {task}")
    return Prediction(value.label, latency)
