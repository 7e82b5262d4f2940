"""Prompt templates: every task renders, answers round-trip through the parser, schemas accept and reject."""

from __future__ import annotations

import json

import jsonschema
import pytest

from faceqa.prompts import templates as T
from faceqa.prompts.parser import parse_answer, parse_reasoning
from faceqa.prompts.taxonomy import AGE_GROUPS, EMOTIONS, GENDERS, RACES, labels

# Fields that make every task's questions and answers complete, with the structured answer they imply.
FIELDS = {
    "race": {"label": "Latino_Hispanic"},
    "gender": {"label": "Female"},
    "age_group": {"label": "70+"},
    "emotion": {"label": "Contempt"},
    "attributes": {"race": "East Asian", "gender": "Male", "age_group": "30-39", "emotion": "Happiness"},
    "reasoning": {"observations": ["Lip corners pulled up (AU12, 0.82)", "Cheeks raised (AU6, 0.55)"],
                  "interpretation": "AU6 with AU12 is the prototype of happiness.", "emotion": "Happiness"},
    "count": {"count": 3},
    "person_race": {"label": "Indian", "referent": "the man on the left"},
    "person_gender": {"label": "Male", "referent": "person 2"},
    "person_age_group": {"label": "10-19", "referent": "the second person from the right"},
    "person_emotion": {"label": "Fear", "referent": "the woman in the middle"},
    "oldest": {"id": 2, "referent": "the woman in the middle", "age_group": "60-69"},
    "youngest": {"id": 1, "referent": "the person on the left", "age_group": "3-9"},
    "who_emotion": {"emotion": "Anger", "ids": [1, 3]},
    "same_person": {"referent": "person 1", "other": "person 3", "same": True},
    "marks": {"id": 2, "referent": "the woman in the middle"},
    "describe": {"people": [
        {"id": 1, "referent": "the person on the left", "gender": "Male", "age_group": "20-29", "emotion": "Neutral"},
        {"id": 2, "referent": "the person on the right", "gender": "Female", "age_group": "40-49",
         "emotion": "Surprise"}]},
}

# One valid structured answer and one with a value outside the taxonomy, per task.
GOOD_BAD = {
    "race": ({"race": "Southeast Asian"}, {"race": "Asian"}),
    "gender": ({"gender": "Female"}, {"gender": "female"}),
    "age_group": ({"age_group": "70+"}, {"age_group": "more than 70"}),
    "emotion": ({"emotion": "Happiness"}, {"emotion": "happy"}),
    "attributes": ({"race": "White", "gender": "Male", "age_group": "0-2", "emotion": "Neutral"},
                   {"race": "White", "gender": "Male", "age_group": "0-2", "emotion": "Bored"}),
    "reasoning": ({"observations": ["brows lowered"], "interpretation": "anger", "emotion": "Anger"},
                  {"observations": ["brows lowered"], "interpretation": "anger", "emotion": "Rage"}),
    "count": ({"count": 0}, {"count": -1}),
    "person_race": ({"race": "Black"}, {"race": "African"}),
    "person_gender": ({"gender": "Male"}, {"gender": "Other"}),
    "person_age_group": ({"age_group": "20-29"}, {"age_group": "20-30"}),
    "person_emotion": ({"emotion": "Contempt"}, {"emotion": "Confusion"}),
    "oldest": ({"id": 2, "age_group": "70+"}, {"id": 2, "age_group": "80+"}),
    "youngest": ({"id": 1, "age_group": "3-9"}, {"id": 0, "age_group": "3-9"}),
    "who_emotion": ({"ids": [1, 2]}, {"ids": ["Person 1"]}),
    "same_person": ({"same": False}, {"same": "no"}),
    "marks": ({"id": 3}, {"id": 0}),
    "describe": ({"people": [{"id": 1, "gender": "Female", "age_group": "50-59", "emotion": "Sadness"}]},
                 {"people": [{"id": 1, "gender": "Female", "age_group": "50-59", "emotion": "Melancholy"}]}),
}


def test_every_task_is_covered_here():
    assert set(T.tasks()) == set(FIELDS) == set(GOOD_BAD)


@pytest.mark.parametrize("task", sorted(FIELDS))
@pytest.mark.parametrize("style", T.STYLES)
def test_every_question_renders(task, style):
    fields = {"referent": "the man on the left", "other": "person 3", **FIELDS[task]}
    texts = {T.question(task, style, seed, **fields) for seed in [None, *range(40)]}
    assert len(texts) == len(T.questions(task, style))  # every paraphrase renders and gets picked
    for text in texts:
        assert text.strip() and "{" not in text and "}" not in text
        assert text.startswith("answer en ") == (style == "paligemma")


def test_options_list_the_taxonomy_and_seeds_are_deterministic():
    assert all(label in T.question("race") for label in RACES)
    assert all(label in T.question("age_group") for label in AGE_GROUPS)
    picks = [T.question("emotion", "chat", seed) for seed in range(40)]
    assert picks == [T.question("emotion", "chat", seed) for seed in range(40)]
    assert len(set(picks)) == len(T.questions("emotion", "chat")) > 1  # every paraphrase gets used
    assert T.question("emotion") == T.questions("emotion")[0].replace("{options}", ", ".join(EMOTIONS))


@pytest.mark.parametrize("task", ["race", "gender", "age_group", "emotion",
                                  "person_race", "person_gender", "person_age_group", "person_emotion"])
@pytest.mark.parametrize("style", T.STYLES)
def test_label_answers_parse_back_to_their_label(task, style):
    attribute = T.task(task).attribute
    for label in labels(attribute):
        for seed in range(6):
            text = T.answer(task, style, seed, label=label, referent="the person on the left")
            parsed = parse_answer(attribute, text)
            assert parsed.ok and parsed.label == label, (text, parsed)
    assert T.choices(task) == list(labels(attribute))


@pytest.mark.parametrize("task", sorted(FIELDS))
@pytest.mark.parametrize("style", [*T.STYLES, "json"])
def test_every_answer_renders(task, style):
    text = T.answer(task, style, 0, **FIELDS[task])
    if style == "json" or task == "attributes":
        jsonschema.validate(json.loads(text), T.json_schema(task))
    else:
        assert text.strip() and "{" not in text and "}" not in text


def test_multi_person_answers():
    assert T.answer("count", count=1) == "There is 1 person in the photo."
    assert T.answer("count", count=4) == "There are 4 people in the photo."
    assert T.answer("who_emotion", emotion="Anger", ids=[1, 3]) == "Looking angry: person 1 and person 3."
    assert T.answer("who_emotion", "paligemma", emotion="Anger", ids=[]) == "none"
    assert T.answer("same_person", "paligemma", same=False, referent="person 1", other="person 2") == "no"
    assert T.answer("same_person", same=True, referent="person 1", other="person 2").startswith("Yes")
    assert T.answer("oldest", "paligemma", id=2, referent="x", age_group="70+") == "person 2"
    described = T.answer("describe", **FIELDS["describe"]).splitlines()
    assert described[0] == "There are 2 people:" and described[2].startswith("Person 2 (the person on the right)")
    assert T.answer("person_emotion", label="Fear", referent="the woman in the middle") == \
        "The woman in the middle looks afraid."


@pytest.mark.parametrize(("kind", "fields", "expected"), [
    ("ordinal", {"ordinal": 2, "side": "left"}, "the second person from the left"),
    ("ordinal", {"ordinal": 12, "side": "right"}, "the 12th person from the right"),
    ("side", {"side": "right"}, "the person on the right"),
    ("middle", {}, "the person in the middle"),
    ("id", {"id": 3}, "person 3"),
    ("emotion", {"emotion": "Happiness"}, "the person who looks happy"),
])
def test_referents(kind, fields, expected):
    assert T.referent(kind, **fields) == expected


def test_gendered_referents_use_the_noun():
    variants = {T.referent("side", seed, side="left", gender="Female") for seed in range(30)}
    assert "the woman on the left" in variants
    assert all("man " not in v.replace("woman", "") for v in variants)
    assert all("{noun}" not in T.referent("side", seed, side="left") for seed in range(30))


def test_cot_layout_round_trips_through_the_parser():
    text = T.answer("reasoning", **FIELDS["reasoning"])
    assert [line for line in text.splitlines() if line.endswith(":")] == [f"{h}:" for h in T.COT_HEADINGS]
    parsed = parse_reasoning(text)
    assert parsed.complete and parsed.emotion.label == "Happiness"
    assert parsed.sections["Key observations"].count("- ") == 2


def test_attributes_answer_parses_back():
    text = T.answer("attributes", **FIELDS["attributes"])
    assert {a: parse_answer(a, text).label for a in FIELDS["attributes"]} == FIELDS["attributes"]


@pytest.mark.parametrize("task", sorted(GOOD_BAD))
def test_schema_accepts_a_correct_answer_and_rejects_a_wrong_one(task):
    schema = T.json_schema(task)
    jsonschema.Draft202012Validator.check_schema(schema)
    good, bad = GOOD_BAD[task]
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "extra": 1}, schema)


def test_schema_enums_are_the_taxonomies_and_response_format_is_strict():
    assert T.json_schema("attributes")["properties"]["emotion"]["enum"] == list(EMOTIONS)
    assert T.json_schema("gender")["properties"]["gender"]["enum"] == list(GENDERS)
    fmt = T.response_format("race")
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["race"]["enum"] == list(RACES)
    T.json_schema("race")["properties"]["race"]["enum"].append("Martian")  # callers get a copy
    assert "Martian" not in T.json_schema("race")["properties"]["race"]["enum"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: T.question("nope"), "unknown task"),
    (lambda: T.question("emotion", "gpt"), "unknown style"),
    (lambda: T.question("person_emotion"), "needs field"),
    (lambda: T.answer("emotion", label="Joy"), "not one of the emotion labels"),
    (lambda: T.answer("same_person", referent="a", other="b"), "same"),
    (lambda: T.answer("reasoning", emotion="Anger"), "observations"),
    (lambda: T.answer("describe"), "needs people"),
    (lambda: T.choices("count"), "no closed list"),
    (lambda: T.choices("reasoning"), "no closed list"),
    (lambda: T.referent("tallest"), "unknown referent kind"),
    (lambda: T.render_cot([], "x", "y"), "non-empty"),
])
def test_bad_requests_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
