"""The thin predictor adapters: what they send, what they pick, and how they fail."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.backend_predictor import VLMBackendPredictor
from faceqa.eval.engine_predictor import EngineVsLabels
from faceqa.eval.openai_predictor import OpenAIEndpointPredictor
from faceqa.eval.predictor import UnusableInput
from faceqa.prompts import templates
from faceqa.schema import AgeEstimate, FaceReport, ImageInfo, ImageReport, LabelScore
from faceqa.vlm.base import Completion, VLMBackend


def record(path: Path) -> FaceRecord:
    return FaceRecord(path, f"t:{path.name}", "t", None, {"gender": "Female"})


def png(path: Path) -> Path:
    Image.new("RGB", (5, 4), (10, 20, 30)).save(path)
    return path


def face(x: int, size: int, gender: str) -> FaceReport:
    return FaceReport(id=1, box=(x, 0, size, size), score=0.9, landmarks5=[(0.0, 0.0)] * 5,
                      age=AgeEstimate(years=33.0, group="30-39"), gender=LabelScore(label=gender, score=0.9))


class FakeEngine:
    def __init__(self, faces):
        self.faces, self.calls = faces, 0

    def analyze(self, source):
        self.calls += 1
        assert isinstance(source, bytes)
        return ImageReport(image=ImageInfo(width=100, height=100), faces=self.faces)


def test_engine_takes_the_largest_face_and_analyses_each_image_once(tmp_path):
    engine = FakeEngine([face(0, 20, "Male"), face(50, 40, "Female")])
    predictor = EngineVsLabels(engine)
    item = record(png(tmp_path / "a.png"))
    assert predictor.predict(item, "gender").label == "Female"
    age = predictor.predict(item, "age_group")
    assert (age.label, age.years) == ("30-39", 33.0)
    assert predictor.predict(item, "emotion").reason == "engine gave no emotion"
    assert engine.calls == 1


def test_engine_without_a_face_answers_nothing(tmp_path):
    prediction = EngineVsLabels(FakeEngine([])).predict(record(png(tmp_path / "a.png")), "gender")
    assert prediction.label is None and prediction.reason == "no face detected"


def test_missing_and_empty_images_are_unusable(tmp_path):
    predictor = OpenAIEndpointPredictor("http://127.0.0.1:9/v1", "m")
    with pytest.raises(UnusableInput, match="No such file"):
        predictor.predict(record(tmp_path / "missing.jpg"), "gender")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UnusableInput, match="empty file"):
        predictor.predict(record(tmp_path / "empty.jpg"), "gender")


class Backend(VLMBackend):
    def __init__(self, text):
        self.text, self.seen = text, []

    def complete(self, images, prompt, params=None):
        self.seen.append((images, prompt, params))
        return Completion(self.text, 1, 1)


def test_backend_predictor_sends_pixels_and_the_template_question(tmp_path):
    backend = Backend('{"gender": "female"}')
    predictor = VLMBackendPredictor(backend, "tiny", style="paligemma")
    prediction = predictor.predict(record(png(tmp_path / "a.png")), "gender")
    assert prediction.label == "Female" and prediction.text == '{"gender": "female"}'
    images, messages, params = backend.seen[0]
    assert isinstance(images[0], np.ndarray) and images[0].shape == (4, 5, 3)
    assert messages == [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": templates.question("gender", "paligemma")}]}]
    assert params.temperature == 0.0
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(UnusableInput, match="not an image"):
        predictor.predict(record(tmp_path / "bad.jpg"), "gender")
    unparsed = VLMBackendPredictor(Backend("no idea"), "tiny").predict(record(tmp_path / "a.png"), "gender")
    assert unparsed.label is None and unparsed.reason
