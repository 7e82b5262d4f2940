"""Taxonomies: free text -> canonical labels, and other datasets' labels -> ours."""

from __future__ import annotations

import pytest

from faceqa.prompts import taxonomy
from faceqa.prompts.taxonomy import (
    AGE_GROUPS,
    EMOTIONS,
    GENDERS,
    RACES,
    age_group,
    candidate_labels,
    comparable_labels,
    labels,
    map_label,
    mapping_note,
    normalize,
    resolve_label,
    sources,
)

NORMALIZE = [
    # race: case, punctuation, underscores, synonyms
    ("race", "Latino_Hispanic", "Latino_Hispanic"),
    ("race", "latino/hispanic", "Latino_Hispanic"),
    ("race", "Hispanic", "Latino_Hispanic"),
    ("race", "LATINO-HISPANIC", "Latino_Hispanic"),
    ("race", "east-asian", "East Asian"),
    ("race", "East_Asian", "East Asian"),
    ("race", "South-East Asian", "Southeast Asian"),
    ("race", "southeast asian", "Southeast Asian"),
    ("race", "South Asian", "Indian"),
    ("race", "Caucasian", "White"),
    ("race", "african american", "Black"),
    ("race", "middle-eastern", "Middle Eastern"),
    ("race", "  White.  ", "White"),
    ("race", "Asian", None),  # East or Southeast: never picked silently
    ("race", "American Indian", None),  # not FairFace's Indian
    ("race", "Native American", None),
    ("race", "mixed race", None),
    ("race", "He has black hair and looks East Asian", "East Asian"),
    ("race", "Asian, more precisely Southeast Asian", "Southeast Asian"),
    ("race", "White or Black", None),
    # gender
    ("gender", "male", "Male"),
    ("gender", "FEMALE", "Female"),
    ("gender", "a woman", "Female"),
    ("gender", "Man", "Male"),
    ("gender", "girl", "Female"),
    ("gender", "human", None),
    ("gender", "non-binary", None),
    ("gender", "either Male or Female", None),
    # age groups
    ("age_group", "70+", "70+"),
    ("age_group", "more than 70", "70+"),
    ("age_group", "over 70", "70+"),
    ("age_group", "70 or older", "70+"),
    ("age_group", "in her 80s", "70+"),
    ("age_group", "30s", "30-39"),
    ("age_group", "mid-30s", "30-39"),
    ("age_group", "early thirties", "30-39"),
    ("age_group", "about 35 years old", "30-39"),
    ("age_group", "35yo", "30-39"),
    ("age_group", "a 35-year-old", "30-39"),
    ("age_group", "25-32", None),  # straddles 20-29 and 30-39
    ("age_group", "between 20 and 30", None),
    ("age_group", "30-35", "30-39"),
    ("age_group", "20\u201329", "20-29"),
    ("age_group", "between 20 and 29", "20-29"),
    ("age_group", "0-2", "0-2"),
    ("age_group", "2.5", "0-2"),
    ("age_group", "under 3", "0-2"),
    ("age_group", "under 10", None),
    ("age_group", "over 30", None),
    ("age_group", "baby", "0-2"),
    ("age_group", "a teenager", "10-19"),
    ("age_group", "toddler", None),
    ("age_group", "a child of about 5", "3-9"),
    ("age_group", "late 60s or early 70s", None),
    ("age_group", "person 2 is about 40", "40-49"),
    ("age_group", "2 people, both about 40", "40-49"),
    ("age_group", "confidence 0.87, age 30-39", "30-39"),
    ("age_group", "500 years", None),
    ("age_group", "old", None),
    ("age_group", 35, "30-39"),
    ("age_group", 2.9, "0-2"),
    ("age_group", 70, "70+"),
    ("age_group", 69.9, "60-69"),
    ("age_group", -1, None),
    ("age_group", "not over 70", None),
    # emotion
    ("emotion", "happy", "Happiness"),
    ("emotion", "Happiness", "Happiness"),
    ("emotion", "joy", "Happiness"),
    ("emotion", "smiling", "Happiness"),
    ("emotion", "angry", "Anger"),
    ("emotion", "surprised", "Surprise"),
    ("emotion", "scared", "Fear"),
    ("emotion", "disgusted", "Disgust"),
    ("emotion", "sad", "Sadness"),
    ("emotion", "contemptuous", "Contempt"),
    ("emotion", "NEUTRAL", "Neutral"),
    ("emotion", "disgust", "Disgust"),  # FER2013-style folder names
    ("emotion", "fear", "Fear"),
    ("emotion", "surprise", "Surprise"),
    ("emotion", "unhappy", None),  # not "happy": whole words only
    ("emotion", "fearless", None),
    ("emotion", "confused", None),
    ("emotion", "upset", None),
    ("emotion", "does not look angry", None),
    ("emotion", "not happy but sad", None),
    ("emotion", "I'm happy to help! She looks angry.", "Anger"),
    ("emotion", 3, None),
    ("emotion", "", None),
]


@pytest.mark.parametrize(("attribute", "text", "expected"), NORMALIZE)
def test_normalize(attribute, text, expected):
    assert normalize(attribute, text) == expected


@pytest.mark.parametrize("attribute", taxonomy.ATTRIBUTES)
def test_every_label_normalizes_to_itself(attribute):
    for label in labels(attribute):
        assert normalize(attribute, label) == label
        assert normalize(attribute, label.upper()) == label
        assert normalize(attribute, taxonomy.display(attribute, label)) == label


def test_reasons_say_what_happened():
    assert "20-29, 30-39" in resolve_label("age_group", "25-32").reason
    assert "East Asian or Southeast Asian" in resolve_label("race", "asian").reason
    assert "negated" in resolve_label("emotion", "she is not smiling").reason
    assert "several" in resolve_label("gender", "male/female").reason


def test_public_constants_and_age_group():
    assert len(RACES) == 7 and len(GENDERS) == 2 and len(AGE_GROUPS) == 9 and len(EMOTIONS) == 8
    assert [age_group(y) for y in (0, 3, 9, 10, 19.9, 20, 45, 69, 70, 101)] == [
        "0-2", "3-9", "3-9", "10-19", "10-19", "20-29", "40-49", "60-69", "70+", "70+"]
    with pytest.raises(ValueError):
        age_group(-0.5)


def test_unknown_attribute_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown attribute"):
        normalize("hair", "blond")


MAPPINGS = [
    ("rafdb", 1, "Surprise"), ("rafdb", "4", "Happiness"), ("rafdb", 7, "Neutral"), ("rafdb", "Anger", "Anger"),
    ("fer2013", 0, "Anger"), ("fer2013", 3, "Happiness"), ("fer2013", 6, "Neutral"), ("fer2013", "disgust", "Disgust"),
    ("affectnet", 0, "Neutral"), ("affectnet", "1", "Happiness"), ("affectnet", 7, "Contempt"),
    ("affectnet", "Happy", "Happiness"), ("affectnet", "sad", "Sadness"), ("affectnet", 8, None),
    ("affectnet", "Uncertain", None), ("affectnet", "Non-Face", None),
    ("utkface_race", 0, "White"), ("utkface_race", 1, "Black"), ("utkface_race", 2, None),
    ("utkface_race", 3, "Indian"), ("utkface_race", 4, None), ("utkface", "Asian", None),
    ("utkface_gender", 0, "Male"), ("utkface_gender", 1, "Female"), ("utkface", "Female", "Female"),
    ("deepface_race", "asian", None), ("deepface_race", "latino hispanic", "Latino_Hispanic"),
    ("deepface_race", "middle eastern", "Middle Eastern"), ("deepface", "Woman", "Female"),
    ("deepface_emotion", "happy", "Happiness"),
    ("fairface", "more than 70", "70+"), ("fairface", "Latino_Hispanic", "Latino_Hispanic"),
    ("fairface", "East Asian", "East Asian"), ("fairface_age_group", "3-9", "3-9"),
    ("rafdb", "Contempt", None), ("rafdb", 9, None),
]


@pytest.mark.parametrize(("source", "label", "expected"), MAPPINGS)
def test_map_label(source, label, expected):
    assert map_label(source, label) == expected


def test_coarse_classes_are_a_documented_set_not_a_guess():
    assert candidate_labels("utkface_race", 2) == ("East Asian", "Southeast Asian")
    assert candidate_labels("utkface", "Others") == ("Latino_Hispanic", "Middle Eastern")
    assert candidate_labels("deepface", "asian") == ("East Asian", "Southeast Asian")
    assert "Asian" in mapping_note("utkface_race") and "Southeast" in mapping_note("utkface_race")
    assert "Contempt" in mapping_note("rafdb") and "Contempt" in mapping_note("fer2013")
    assert "Uncertain" in mapping_note("affectnet")


@pytest.mark.parametrize(("source", "attribute", "expected"), [
    ("rafdb", None, tuple(e for e in EMOTIONS if e != "Contempt")),
    ("fer2013", "emotion", tuple(e for e in EMOTIONS if e != "Contempt")),
    ("affectnet", None, EMOTIONS),
    ("utkface", "race", ("White", "Black", "Indian")),
    ("utkface", "gender", GENDERS),
    ("deepface", "race", ("White", "Black", "Latino_Hispanic", "Indian", "Middle Eastern")),
    ("fairface", "age_group", AGE_GROUPS),
])
def test_comparable_labels(source, attribute, expected):
    assert comparable_labels(source, attribute) == expected


def test_every_source_has_a_note_and_maps_only_into_its_attribute():
    for source in sources():
        attribute = next(a for a in taxonomy.ATTRIBUTES if source.endswith(a))
        assert len(mapping_note(source)) > 20
        for native in (n for _, table in taxonomy._tables(source) for n in table["map"]):
            candidates = candidate_labels(source, native)
            assert set(candidates) <= set(labels(attribute))
            assert map_label(source, native) == (candidates[0] if len(candidates) == 1 else None)


def test_bad_sources_and_shared_codes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown label source"):
        map_label("imagenet", "cat")
    with pytest.raises(ValueError, match="several attributes"):
        map_label("utkface", 0)  # race White or gender Male?
    with pytest.raises(TypeError):
        map_label("rafdb", None)
    assert map_label("utkface", "Banana") is None
