"""Property-based fuzzing of the two places hostile input arrives first: image decoding and the answer parser.

Deterministic and bounded (hypothesis derandomized, no example database, a few hundred examples each, a
few seconds in all), so it runs in the default suite. For a longer hunt by hand:

    FACEQA_FUZZ_EXAMPLES=20000 python -m pytest -q -p no:cacheprovider tests/test_fuzz.py

and set FACEQA_FUZZ_SEED to explore other corners. A crasher found that way goes into tests/data/crashers/
(test_images.py keeps every file there refused as damaged).
"""

from __future__ import annotations

import io
import json
import os
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from faceqa.images import MAX_SIDE, BadImage, load_image
from faceqa.prompts.parser import parse_answer, parse_choice, parse_reasoning
from faceqa.prompts.taxonomy import ATTRIBUTES, field_names, labels

FUZZ_CASES = int(os.environ.get("FACEQA_FUZZ_EXAMPLES", "250"))
SEED = int(os.environ.get("FACEQA_FUZZ_SEED", "0"))
FUZZ = settings(max_examples=FUZZ_CASES, deadline=None, database=None, derandomize=SEED == 0,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FORMATS = ("PNG", "JPEG", "AVIF", "TIFF", "GIF", "WEBP", "BMP")


@cache
def valid_files() -> dict[str, bytes]:
    """One small real photo (a crop of the astronaut) in every format we accept."""
    astronaut = Path(__file__).parent.parent / "faceqa" / "examples" / "astronaut.png"
    photo = Image.open(astronaut).convert("RGB").crop((150, 40, 214, 104))
    files = {}
    for fmt in FORMATS:
        buffer = io.BytesIO()
        photo.save(buffer, fmt)
        files[fmt] = buffer.getvalue()
    return files


def _decodes_or_refuses(data: bytes) -> None:
    try:
        rgb = load_image(data)
    except BadImage as error:
        assert str(error) and "\n" not in str(error) and error.kind
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert 0 < max(rgb.shape[:2]) <= MAX_SIDE and rgb.flags.c_contiguous


@seed(SEED)
@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_are_refused_with_a_bad_image(data):
    _decodes_or_refuses(data)


@st.composite
def mutated_files(draw, fmt: str) -> bytes:
    """A valid file with bytes flipped, overwritten, inserted, deleted, or cut short.

    Where and how is decided by a random generator seeded from one drawn number: uniform over the whole
    file (hypothesis's own integers favour small values, which would keep every mutation in the header).
    """
    data = bytearray(valid_files()[fmt])
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(rng.randint(1, 8)):
        where = rng.randrange(len(data))
        match rng.choices(["flip", "set", "insert", "delete", "truncate"], weights=[3, 4, 1, 1, 1])[0]:
            case "flip":
                data[where] ^= 1 << rng.randrange(8)
            case "set":
                data[where] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            case "insert":
                data[where:where] = rng.randbytes(rng.randint(1, 16))
            case "delete":
                del data[where:where + rng.randint(1, 16)]
            case "truncate":
                del data[max(1, where):]
    return bytes(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_photos_of_every_format_decode_or_are_refused_with_a_bad_image(fmt):
    @seed(SEED)
    @FUZZ
    @given(mutated_files(fmt))
    def mutated(data):
        _decodes_or_refuses(data)

    mutated()


# --- the answer parser ------------------------------------------------------------------------------

@st.composite
def model_answers(draw) -> str:
    """Text shaped like what models write: labels, field lines, JSON (nested, fenced), markdown, noise."""
    attribute = draw(st.sampled_from(ATTRIBUTES))
    word = draw(st.one_of(st.sampled_from(labels(attribute)), st.sampled_from(["happy", "not sad", "man", "45",
                                                                             "either", "null", "Asian"]),
                          st.text(max_size=20)))
    key = draw(st.sampled_from(sorted(field_names(attribute)) + ["answer", "label", "x"]))
    value = draw(st.one_of(st.just(word), st.integers(-5, 150), st.none(), st.lists(st.just(word), max_size=3),
                           st.dictionaries(st.sampled_from(["label", "score", key]), st.just(word), max_size=2)))
    shapes = [
        word,
        f"{key}: {word}",
        f"**{key.title()}:** {word}",
        json.dumps({key: value}),
        json.dumps({"faces": [{key: value}, {key: word}]}),
        f"```json\n{json.dumps({key: value})}\n```",
        f"```\n{json.dumps({key: value})}",  # unclosed fence
        f"Sure! {json.dumps({key: value})} hope that helps",
        f"Key observations: {word}\nOverall emotional interpretation: {word}\nConclusion: {word}",
    ]
    text = draw(st.sampled_from(shapes))
    noise = draw(st.text(max_size=30))
    return draw(st.sampled_from([text, noise + text, text + noise, text[: len(text) // 2]]))


def _well_formed(parsed, attribute: str, text: str) -> None:
    assert parsed.ok == (parsed.label is not None)
    assert parsed.label is None or parsed.label in labels(attribute)
    assert parsed.raw == text and isinstance(parsed.reason, str) and parsed.reason


@seed(SEED)
@FUZZ
@given(attribute=st.sampled_from(ATTRIBUTES), text=st.one_of(st.text(max_size=300), model_answers()))
def test_any_answer_parses_to_a_label_of_the_taxonomy_or_an_explicit_refusal(attribute, text):
    _well_formed(parse_answer(attribute, text), attribute, text)
    reasoning = parse_reasoning(text)
    assert reasoning.emotion.raw == text and reasoning.emotion.ok == (reasoning.emotion.label is not None)
    assert reasoning.emotion.label is None or "Conclusion" in reasoning.sections


@seed(SEED)
@FUZZ
@given(attribute=st.sampled_from(ATTRIBUTES), data=st.data())
def test_a_canonical_label_is_read_back_in_every_format(attribute, data):
    label = data.draw(st.sampled_from(labels(attribute)))
    key = data.draw(st.sampled_from(sorted(field_names(attribute))))
    for text in (label, f"**{label}**", f"{key}: {label}", json.dumps({key: label}),
                 f"```json\n{json.dumps({key: {'label': label, 'score': 0.9}})}\n```",
                 json.dumps({"faces": [{key: label}]})):
        parsed = parse_answer(attribute, text)
        assert parsed.ok and parsed.label == label, (text, parsed)


def two_labels_and_a_field(data, attribute: str) -> tuple[str, str, str]:
    """Two different labels of the attribute and one of its field names, drawn from `data`."""
    first, second = data.draw(st.lists(st.sampled_from(labels(attribute)), min_size=2, max_size=2, unique=True))
    return first, second, data.draw(st.sampled_from(sorted(field_names(attribute))))


@seed(SEED)
@FUZZ
@given(attribute=st.sampled_from(ATTRIBUTES), data=st.data())
def test_two_different_labels_are_never_read_as_one(attribute, data):
    first, second, key = two_labels_and_a_field(data, attribute)
    for text in (f"either {first} or {second}", json.dumps({"faces": [{key: first}, {key: second}]}),
                 f"{key}: {first}\n{key}: {second}"):
        parsed = parse_answer(attribute, text)
        assert not parsed.ok and parsed.label is None, (text, parsed)


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_a_negated_label_is_never_the_answer(attribute):
    for label in labels(attribute):
        parsed = parse_answer(attribute, f"The person does not look {label}.")
        assert parsed.label is None, (label, parsed)


# --- multiple choice ----------------------------------------------------------------------------------

OPTION_TEXTS = st.lists(st.sampled_from(["30-39", "20-29", "40-49", "None of the above", "Happiness", "Images 1 and 2",
                                         "Male", "Looking left", "Three people"]), min_size=2, max_size=4, unique=True)


@seed(SEED)
@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.from_regex(r"\(?[A-Fa-f]\)?[.)]? ?[a-z ]{0,20}", fullmatch=True)),
       options=OPTION_TEXTS)
def test_any_multiple_choice_answer_is_one_offered_letter_or_an_explicit_refusal(text, options):
    parsed = parse_choice(text, options)
    assert parsed.ok == (parsed.label is not None) and parsed.raw == text and parsed.reason
    assert parsed.label is None or parsed.label in "ABCD"[:len(options)]


@seed(SEED)
@FUZZ
@given(options=OPTION_TEXTS, data=st.data())
def test_a_chosen_option_is_read_by_letter_or_by_its_text_and_two_are_never_one(options, data):
    letters = "ABCD"[:len(options)]
    pick = data.draw(st.integers(0, len(options) - 1))
    other = data.draw(st.integers(0, len(options) - 1).filter(lambda i: i != pick))
    for text in (letters[pick], f"({letters[pick]})", f"Answer: {letters[pick]}", f"**{letters[pick]}**",
                 f"{letters[pick]}) {options[pick]}", f"The answer is {options[pick]}."):
        parsed = parse_choice(text, options)
        assert (parsed.ok, parsed.label) == (True, letters[pick]), (text, options, parsed)
    for text in (f"{letters[pick]} or {letters[other]}", f"{options[pick]} or maybe {options[other]}"):
        parsed = parse_choice(text, options)
        assert not parsed.ok and parsed.label is None, (text, options, parsed)
    beyond = "ABCD"[len(options)] if len(options) < 4 else "E"
    assert parse_choice(beyond, options).label is None


@seed(SEED)
@FUZZ
@given(attribute=st.sampled_from(ATTRIBUTES), data=st.data())
def test_json_inside_prose_is_read_as_json_not_as_the_words_around_it(attribute, data):
    # The prose names two labels (refused if read as text); the embedded object names one under the field.
    label, other, key = two_labels_and_a_field(data, attribute)
    document = json.dumps({key: label, "alternatives": [other]})
    for text in (f"Sure, here it is: {document}, hope that helps", f"{document}, hope that helps"):
        parsed = parse_answer(attribute, text)
        assert (parsed.ok, parsed.label) == (True, label), (text, parsed)


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_a_reasoning_conclusion_is_read_from_its_commitment(data):
    first, second = data.draw(st.lists(st.sampled_from(labels("emotion")), min_size=2, max_size=2, unique=True))
    head = "Key observations: AU12 0.8\nOverall emotional interpretation: mixed cues\nConclusion: "
    committed = parse_reasoning(f"{head}{first}. The action units point more to {second}.")
    assert (committed.emotion.ok, committed.emotion.label) == (True, first), committed.emotion
    later = parse_reasoning(f"{head}Looking at all of it together. The face reads as {first}.")
    assert (later.emotion.ok, later.emotion.label) == (True, first), later.emotion
    hedged = parse_reasoning(f"{head}either {first} or {second}")
    assert hedged.emotion.label is None and not hedged.emotion.ok
