"""The CoT check: a model's Exp-CoT answer held against the engine's measured cues and emotion estimate."""

from __future__ import annotations

import pytest

from faceqa.prompts.cot import compose_cot
from faceqa.schema import LabelScore
from faceqa.vlm.cot_check import band, check_cot, cited_aus

MEASURED = {"AU1": 0.20, "AU4": 0.08, "AU6": 0.58, "AU12": 0.86, "AU15": 0.0, "AU25": 0.31}
HAPPY = LabelScore(label="Happiness", score=0.9)


def test_the_engines_own_reasoning_passes_the_check_on_every_example_face(group_report):
    for face in group_report.faces:
        text = compose_cot(face.action_units, face.emotion.label, face.emotion.scores, geometric=True).text
        checked = check_cot(text, face.action_units, face.emotion)
        assert checked.parsed_ok and checked.conclusion_agrees, text
        assert checked.disagreements == () and checked.consistency in (1.0, None), checked.note()


def test_a_planted_strong_brow_lowerer_is_reported_against_its_weak_measured_cue():
    text = compose_cot({**MEASURED, "AU4": 0.9}, "Happiness").text
    checked = check_cot(text, MEASURED, HAPPY)
    assert [d.text for d in checked.disagreements] == [
        "the model cites a strong (0.90) brow lowerer (AU4); the measured cue is weak, 0.08"]
    assert checked.consistency == pytest.approx(4 / 5) and checked.conclusion_agrees
    assert "4 of 5 cited action units agree" in checked.note()


def test_an_intensity_word_without_a_number_is_compared_by_band():
    text = ("Key observations:\n- a strong brow lowerer (AU4)\n- AU12 lip corner puller, strong\n\n"
            "Overall emotional interpretation:\nA smile.\n\nConclusion:\nHappiness.")
    checked = check_cot(text, MEASURED, HAPPY)
    assert checked.agreeing == ("AU12",)
    expected = "the model cites a strong brow lowerer (AU4); the measured cue is weak, 0.08"
    assert checked.disagreements[0].text == expected


def test_an_au_the_cues_do_not_measure_is_named_uncheckable_and_not_counted():
    text = compose_cot({"AU12": 0.86, "AU23": 0.7}, "Happiness").text
    checked = check_cot(text, MEASURED, HAPPY)
    assert checked.agreeing == ("AU12",) and checked.checkable == 1
    assert [d.kind for d in checked.disagreements] == ["unmeasured"]
    assert "AU23 (lip tightener), which the geometric cues do not measure" in checked.disagreements[0].text


def test_a_conclusion_other_than_the_classifiers_is_a_disagreement():
    checked = check_cot(compose_cot(MEASURED, "Sadness").text, MEASURED, HAPPY)
    assert checked.conclusion == "Sadness" and checked.conclusion_agrees is False
    assert checked.disagreements[-1].text == "the model concludes sad; the expression classifier reads happy (90%)"


def test_an_answer_without_the_trained_layout_does_not_parse_and_says_what_is_missing():
    checked = check_cot("She looks happy, AU12 0.9.", MEASURED, HAPPY)
    assert not checked.parsed_ok and checked.conclusion is None and checked.conclusion_agrees is None
    assert checked.agreeing == ("AU12",)  # the citation is still checked
    assert "lacks the section(s) Key observations, Overall emotional interpretation, Conclusion" in checked.note()


def test_citations_are_read_with_their_own_number_and_word():
    cited = cited_aus("- AU6 cheek raiser 0.58, moderate; AU 12 1.0\n- AU4, strong")
    assert [(c.au, c.value, c.strength) for c in cited] == [
        ("AU6", 0.58, "moderate"), ("AU12", 1.0, None), ("AU4", None, "strong")]
    assert [band(v) for v in (0.05, 0.2, 0.45, 0.7, 0.95)] == ["weak", "slight", "moderate", "marked", "strong"]
