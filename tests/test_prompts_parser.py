"""Answer parser: every format a model answers in, and the answers it must refuse rather than misread."""

from __future__ import annotations

import pytest

from faceqa.prompts.parser import (
    ParsedAnswer,
    parse_answer,
    parse_choice,
    parse_reasoning,
    strip_markdown,
)

FENCE = "```"

PARSE = [
    # bare outputs (PaliGemma) and plain sentences
    ("emotion", "happy", "Happiness"),
    ("emotion", "Happiness", "Happiness"),
    ("emotion", "She appears to be happy.", "Happiness"),
    ("emotion", "The person is smiling broadly.", "Happiness"),
    ("emotion", "I'd say the expression is one of surprise", "Surprise"),
    ("emotion", "neutral\n", "Neutral"),
    ("race", "latino_hispanic", "Latino_Hispanic"),
    ("race", "The person appears to be Latino/Hispanic.", "Latino_Hispanic"),
    ("race", "southeast asian", "Southeast Asian"),
    ("gender", "female", "Female"),
    ("gender", "This is a photo of a young man.", "Male"),
    ("age_group", "30-39", "30-39"),
    ("age_group", "The person looks about 45 years old.", "40-49"),
    ("age_group", "more than 70", "70+"),
    ("age_group", "She is probably in her twenties.", "20-29"),
    # markdown
    ("emotion", "**Happy**", "Happiness"),
    ("emotion", "- **Emotion:** Sad", "Sadness"),
    ("emotion", "### Answer\nAngry", "Anger"),
    ("emotion", "* disgusted", "Disgust"),
    ("emotion", "`Fear`", "Fear"),
    ("race", "> **Race**: East Asian", "East Asian"),
    ("age_group", "1. Age group: 20-29", "20-29"),
    # field lines
    ("emotion", "Emotion: happy\nAge: 35\nGender: male", "Happiness"),
    ("age_group", "Emotion: happy\nAge: 35\nGender: male", "30-39"),
    ("gender", "Race: White\nSex = Female", "Female"),
    ("emotion", "Answer: The person looks scared.", "Fear"),
    ("emotion", "Options: Neutral, Happiness, Sadness\nAnswer: Sadness", "Sadness"),
    ("age_group", "Based on facial features, I would estimate the age group to be 20-29.", "20-29"),
    ("emotion", "I can't be certain about feelings, but they appear happy.", "Happiness"),
    ("age_group", "Apparent age: 70+", "70+"),
    # JSON
    ("emotion", '{"emotion": "happy"}', "Happiness"),
    ("emotion", '{"Emotion": "Contempt", "confidence": 0.61}', "Contempt"),
    ("emotion", '{"expression": "surprised"}', "Surprise"),
    ("emotion", '{"answer": "sad"}', "Sadness"),
    ("emotion", '"happy"', "Happiness"),
    ("age_group", '{"age": 34}', "30-39"),
    ("age_group", '{"age_group": "30-39", "age": 34}', "30-39"),
    ("age_group", "[62]", "60-69"),
    ("race", '{"race": "Latino_Hispanic"}', "Latino_Hispanic"),
    ("gender", '{"gender": {"label": "Female", "score": 0.93}}', "Female"),
    # JSON inside code fences, with text around
    ("emotion", f'{FENCE}json\n{{"emotion": "Anger"}}\n{FENCE}', "Anger"),
    ("emotion", f'Here you go:\n{FENCE}\n{{"emotion": "fear"}}\n{FENCE}\nHope this helps!', "Fear"),
    ("emotion", f'{FENCE}JSON\n{{"emotion": "Neutral"}}', "Neutral"),  # unclosed fence
    ("emotion", 'Sure! {"emotion": "disgust"} is my answer.', "Disgust"),
    # nested JSON
    ("emotion", '{"person": {"attributes": {"emotion": "joy"}}}', "Happiness"),
    ("emotion", '{"faces": [{"id": 1, "emotion": "sad"}]}', "Sadness"),
    ("emotion", '{"faces": [{"emotion": "sad"}, {"emotion": "Sadness"}]}', "Sadness"),
    # preambles that contain label words but do not answer with them
    ("emotion", "I'm happy to help! The person looks angry.", "Anger"),
    ("race", "The person has black hair and appears East Asian.", "East Asian"),
    ("race", "A black and white photo of a White woman.", "White"),
    ("age_group", "There are 2 people; the one on the left is about 50.", "50-59"),
]


@pytest.mark.parametrize(("attribute", "text", "expected"), PARSE)
def test_parse_answer(attribute, text, expected):
    parsed = parse_answer(attribute, text)
    assert parsed == ParsedAnswer(expected, True, text, parsed.reason), parsed
    assert parsed.reason


REFUSE = [
    # negation is never the label
    ("emotion", "She does not look angry.", "negated"),
    ("emotion", "not happy", "negated"),
    ("emotion", "I don't think he is sad", "negated"),
    ("emotion", "There is no smile on her face.", "negated"),
    ("emotion", "Neither happy nor sad", "negated"),
    ("gender", "This is not a man.", "negated"),
    ("age_group", "She is not over 70.", "negated"),
    # two labels
    ("emotion", "not happy but sad", "negated mention: 'happy'; names several emotion labels: Happiness, Sadness"),
    ("age_group", "A woman in her late 20s to early 30s.", "several"),
    ("race", "I cannot determine race from an image.", "no race"),
    ("emotion", "happy or sad, hard to tell", "several"),
    ("gender", "either Male or Female", "several"),
    ("gender", "Male/Female", "several"),
    ("race", "White, Black, Indian, East Asian", "several"),
    ("emotion", "Options: Neutral, Happiness, Sadness. Answer: Sadness", "several"),
    ("age_group", "in his late 60s or early 70s", "several"),
    ("emotion", '{"faces": [{"emotion": "happy"}, {"emotion": "sad"}]}', "several"),
    ("age_group", '{"age_group": "30-39", "age": 25}', "several"),
    # none, empty, garbage
    ("emotion", "", "empty"),
    ("emotion", "   \n ", "empty"),
    ("emotion", None, "empty"),
    ("emotion", "asdf qwerty", "no emotion"),
    ("emotion", "The image shows a person.", "no emotion"),
    ("emotion", "{{{]]]", "no emotion"),
    ("gender", "\u2603\u2603\u2603", "no gender"),
    ("age_group", "old", "no age_group"),
    # ambiguous and outside the taxonomy
    ("race", "Asian", "East Asian or Southeast Asian"),
    ("race", "Native American", "not one of the race labels"),
    ("emotion", "She looks confused.", "not one of the emotion labels"),
    ("emotion", "unhappy", "could mean"),
    ("age_group", "around 25-32", "spans"),
    ("age_group", "a child", "could mean"),
    # JSON without the field, with a distribution, null, or a non-label
    ("emotion", '{"gender": "male"}', "no emotion field"),
    ("emotion", '{"emotion": {"happy": 0.7, "sad": 0.3}}', "not a label"),
    ("emotion", '{"emotion": null}', "null"),
    ("emotion", '{"emotion": 3}', "number"),
    ("emotion", '{"emotion": "unknown"}', "no emotion"),
    ("emotion", f'{FENCE}json\n{{"result": {{"emotion": ["happy", "angry"]}}}}\n{FENCE}', "not a label"),
    # truncated JSON falls back to text, which here names no label
    ("emotion", '{"emotion": "hap', "no emotion"),
]


@pytest.mark.parametrize(("attribute", "text", "why"), REFUSE)
def test_unreadable_answers_are_explicitly_unparsed(attribute, text, why):
    parsed = parse_answer(attribute, text)
    assert parsed.label is None and not parsed.ok
    assert parsed.raw == (text or "")
    assert why in parsed.reason


ATTRIBUTES_CASES = [
    (f'{FENCE}json\n{{"race": "latino_hispanic", "gender": "Female", "age": 34, "emotion": "joy"}}\n{FENCE}',
     {"race": "Latino_Hispanic", "gender": "Female", "age_group": "30-39", "emotion": "Happiness"}),
    ('{"person": {"race": "White", "sex": "M", "age_group": "70+", "expression": "neutral"}}',
     {"race": "White", "gender": None, "age_group": "70+", "emotion": "Neutral"}),
    ("**Race:** Indian\n**Gender:** Male\n**Age group:** 50-59\n**Emotion:** Anger",
     {"race": "Indian", "gender": "Male", "age_group": "50-59", "emotion": "Anger"}),
    ("A smiling East Asian woman in her 30s.",
     {"race": "East Asian", "gender": "Female", "age_group": "30-39", "emotion": "Happiness"}),
    ('{"race": "Asian", "gender": "male"}',
     {"race": None, "gender": "Male", "age_group": None, "emotion": None}),
    ("", {"race": None, "gender": None, "age_group": None, "emotion": None}),
]


@pytest.mark.parametrize(("text", "expected"), ATTRIBUTES_CASES)
def test_every_attribute_parses_from_one_answer(text, expected):
    parsed = {a: parse_answer(a, text) for a in expected}
    assert {a: p.label for a, p in parsed.items()} == expected
    assert all(p.ok == (p.label is not None) and p.reason for p in parsed.values())


REASONING = """**Key observations:**
- Brows lowered and drawn together (AU4, 0.71)
- Upper lids raised (AU5, 0.40)

**Overall emotional interpretation:** AU4 with AU5 points to anger; there is no sign of happiness.

**Conclusion:** The person appears angry."""


def test_parse_reasoning_reads_the_conclusion_only():
    parsed = parse_reasoning(REASONING)
    assert parsed.complete
    assert parsed.emotion.label == "Anger" and parsed.emotion.raw == REASONING
    assert "AU4" in parsed.sections["Key observations"]
    assert parse_answer("emotion", REASONING).label is None  # the whole text weighs several emotions


@pytest.mark.parametrize(("text", "complete", "label"), [
    ("Key observations: smile\nConclusion: Happiness", False, "Happiness"),
    ("1. Key observations\nAU12\n2. Overall emotional interpretation\nhappy\n3. Conclusion\nhappiness", True,
     "Happiness"),
    ("Key observations: AU4\nOverall emotional interpretation: anger or disgust", False, None),
    ("Conclusion: either sad or afraid", False, None),
    ("", False, None),
])
def test_parse_reasoning_variants(text, complete, label):
    parsed = parse_reasoning(text)
    assert parsed.complete == complete and parsed.emotion.label == label


def test_strip_markdown_keeps_words_and_underscores():
    assert strip_markdown("## **Latino_Hispanic**\n- `x`\n2) __y__") == "Latino_Hispanic\nx\ny"


def test_bad_calls_are_clear_errors():
    with pytest.raises(ValueError, match="unknown attribute"):
        parse_answer("height", "tall")
    with pytest.raises(TypeError):
        parse_answer("emotion", 3)
    with pytest.raises(TypeError, match="an answer is text"):
        parse_choice(3, ["yes", "no"])


def test_parsed_results_cannot_be_changed_after_the_fact():
    import dataclasses

    parsed, reasoning = parse_answer("emotion", "happy"), parse_reasoning("Conclusion: happy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.label = "Sadness"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        reasoning.complete = True  # type: ignore[misc]
