"""The VLM attribute engine on real photos with a tiny random VLM (TransformersBackend, no server).

The tiny model's labels are random: the tests check the path (crops, prompts, parser,
schema, provenance, failures), never whether a label is right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from faceqa.crops import face_crop
from faceqa.images import load_image
from faceqa.prompts import templates
from faceqa.prompts.taxonomy import AGE_GROUPS, EMOTIONS, GENDERS, RACES, display
from faceqa.vlm.attributes import VLMAttributes, VLMAttributesConfig
from faceqa.vlm.base import Completion, GenerationParams, VLMBackend, VLMError


@pytest.fixture(scope="module")
def backend(tiny_checkpoints):
    from faceqa.vlm.transformers_backend import TransformersBackend

    return TransformersBackend(tiny_checkpoints.vlm("llava"), adapter=tiny_checkpoints.lora("llava"))


@pytest.fixture(scope="module")
def group_rgb(examples):
    return load_image(examples / "group.jpg")


class Recorder(VLMBackend):
    """Records what the engine asks and answers from a script (a unit-test stand-in for a model)."""

    name = "recorder"

    def __init__(self, answer=lambda question, params: Completion("Happiness", 10, 2, logprob=-0.5)):
        self.asked: list[tuple[np.ndarray, str, GenerationParams]] = []
        self.answer = answer

    def complete(self, images: Sequence[np.ndarray], prompt, params=None) -> Completion:
        question = prompt[-1]["content"][-1]["text"]
        self.asked.append((images[0], question, params))
        return self.answer(question, params)


def test_fills_every_face_with_taxonomy_labels_and_provenance(backend, group_rgb, group_report):
    filled, failures = VLMAttributes(backend).annotate(group_rgb, group_report)
    assert failures == []
    assert [(f.id, f.box) for f in filled.faces] == [(f.id, f.box) for f in group_report.faces]
    for face in filled.faces:
        assert face.race.label in RACES and face.gender.label in GENDERS
        assert face.emotion.label in EMOTIONS and face.age.group in AGE_GROUPS
        assert all(0 < s <= 1 for s in (face.race.score, face.gender.score, face.emotion.score, face.age.score))
        for field in ("race", "gender", "age", "emotion"):
            assert face.sources[field] == "vlm:transformers:llava+llava-lora"
        assert face.sources["detection"] == group_report.faces[0].sources["detection"]  # the rest is kept
        assert face.landmarks5 == group_report.faces[face.id - 1].landmarks5


def test_scores_are_the_models_probability_of_the_label(backend, group_rgb, group_report):
    """Asking the same question directly gives the same label and probability the engine stored."""
    engine = VLMAttributes(backend, VLMAttributesConfig(attributes=("emotion",)))
    filled, _ = engine.annotate(group_rgb, group_report)
    face = group_report.faces[0]
    crop = face_crop(group_rgb, face.box, engine.config.margin)
    direct = backend.complete(
        [crop],
        engine._messages(templates.question("emotion", "chat")),
        GenerationParams(max_tokens=24, choices=tuple(EMOTIONS), logprobs=True),
    )
    assert filled.faces[0].emotion.label == direct.text
    assert filled.faces[0].emotion.score == pytest.approx(np.exp(direct.logprob))


def test_unreadable_answers_leave_the_field_empty_and_are_reported(backend, group_rgb, group_report, monkeypatch):
    """Unconstrained, the random model writes gibberish: nothing is guessed, every miss is listed."""
    from faceqa.prompts.parser import parse_answer

    texts: list[str] = []  # the model's raw answers, in the order they were asked
    complete_batch = backend.complete_batch

    def recorded(requests, params=None):
        results = complete_batch(requests, params)
        texts.extend(result.text for result in results)
        return results

    monkeypatch.setattr(backend, "complete_batch", recorded)
    engine = VLMAttributes(backend, VLMAttributesConfig(structured=False, attributes=("race", "gender")))
    filled, failures = engine.annotate(group_rgb, group_report)
    # One batch per attribute, faces in order: the raw answer to (face, attribute).
    raw = {(face.id, attribute): texts[a * len(group_report.faces) + i]
           for a, attribute in enumerate(("race", "gender")) for i, face in enumerate(group_report.faces)}
    reported = {(f.face, f.attribute): f for f in failures}
    assert len(reported) == len(failures)
    assert any(not parse_answer(attribute, text).ok for (_, attribute), text in raw.items())  # the premise
    for (face_id, attribute), text in raw.items():
        expected = parse_answer(attribute, text)
        face = filled.faces[face_id - 1]
        if expected.ok:  # a readable answer is read as exactly what it says
            assert getattr(face, attribute).label == expected.label and (face_id, attribute) not in reported
        else:  # an unreadable one is empty, and reported with the parser's reason and the raw text
            assert getattr(face, attribute) is None and attribute not in face.sources
            failure = reported[(face_id, attribute)]
            assert failure.reason == expected.reason and failure.answer == text and failure.kind == "unreadable"


def test_backend_errors_become_failures(group_rgb, group_report):
    def refuse(question, params):
        raise VLMError("server answered 503")

    engine = VLMAttributes(Recorder(refuse), VLMAttributesConfig(attributes=("emotion",)))
    filled = engine.fill(group_rgb, group_report)
    assert all(face.emotion is None for face in filled.faces)
    assert [f.face for f in engine.last_failures] == [f.id for f in group_report.faces]
    assert all("503" in f.reason and f.kind == "no_answer" for f in engine.last_failures)


def test_crops_mode_sends_each_face_alone_with_the_prompts_question(group_rgb, group_report):
    recorder = Recorder()
    engine = VLMAttributes(recorder, VLMAttributesConfig(attributes=("emotion",), margin=0.25))
    filled = engine.fill(group_rgb, group_report)
    assert len(recorder.asked) == len(group_report.faces)
    for (image, question, params), face in zip(recorder.asked, group_report.faces, strict=True):
        assert (image == face_crop(group_rgb, face.box, 0.25)).all()
        assert question == templates.question("emotion", "chat")
        assert params.choices == tuple(EMOTIONS) and params.logprobs
    assert all(f.emotion.label == "Happiness" and f.emotion.score == pytest.approx(np.exp(-0.5)) for f in filled.faces)


def test_whole_image_mode_names_each_person_by_position(group_rgb, group_report):
    recorder = Recorder()
    VLMAttributes(recorder, VLMAttributesConfig(attributes=("emotion",), mode="whole_image")).fill(
        group_rgb, group_report
    )
    assert all(image.shape == group_rgb.shape for image, _, _ in recorder.asked)
    questions = [q for _, q, _ in recorder.asked]
    assert questions[1] == templates.question(
        "person_emotion", "chat", referent=templates.referent("ordinal", ordinal=2, side="left")
    )
    assert "second person from the left" in questions[1]


def test_paligemma_style_prompts(group_rgb, group_report):
    recorder = Recorder()
    VLMAttributes(recorder, VLMAttributesConfig(attributes=("gender",), style="paligemma")).fill(
        group_rgb, group_report
    )
    assert recorder.asked[0][1] == templates.question("gender", "paligemma")


def test_the_assistant_answers_race_with_the_vlm_engine(engine, backend, examples):
    from faceqa.assistant import Assistant

    assistant = Assistant(engine, attributes=VLMAttributes(backend))
    answer = assistant.answer(examples / "astronaut.png", "What is her race?")
    assert answer.status == "ok"
    race = answer.result.faces[0].race.label
    assert race in RACES and display("race", race) in answer.answer


def test_config_is_validated():
    with pytest.raises(ValueError, match="attributes"):
        VLMAttributesConfig(attributes=("hair",))
    with pytest.raises(ValueError, match="mode"):
        VLMAttributesConfig(mode="faces")
    with pytest.raises(ValueError, match="style"):
        VLMAttributesConfig(style="gpt")
