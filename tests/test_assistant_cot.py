"""Exp-CoT: every number the reasoning cites is recomputed from the report it came from."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import EXAMPLES

from faceqa.prompts.cot import compose_cot, emfacs, wording
from faceqa.prompts.taxonomy import EMOTIONS
from faceqa.prompts.templates import COT_HEADINGS

CITED = re.compile(r"\b(AU\d+)(?: [a-z ]+ \([^)]*\))? (\d\.\d\d)\b")


@pytest.fixture(scope="module")
def faces(engine):
    """Every face of the example photos and of the mirrored group photo."""
    from faceqa.images import load_image

    found = []
    for path in sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".jpg", ".png")):
        rgb = load_image(path)
        for variant, image in (("", rgb), (" mirrored", np.ascontiguousarray(rgb[:, ::-1]))):
            if variant and path.name != "group.jpg":
                continue
            found += [(f"{path.name}{variant} #{f.id}", f) for f in engine.analyze(image).faces]
    assert len(found) >= 13
    return found


def _sections(text: str) -> dict[str, str]:
    parts = re.split(rf"^({'|'.join(COT_HEADINGS)}):$", text, flags=re.M)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def _evidence(values: dict[str, float]) -> str | None:
    """The emotion the AUs point to, recomputed here from the prototype table and the thresholds."""
    w = wording()
    best, best_support = None, 0.0
    for emotion, proto in sorted(emfacs()["prototypes"].items()):
        if proto.get("unilateral"):
            continue
        measured = [au for au in proto["aus"] if au in values]
        present = [values[au] for au in measured if values[au] >= w["threshold"]]
        missing = len(proto["aus"]) - len(measured)
        if (
            not present
            or len(present) / len(measured) < w["min_coverage"]
            or missing > len(proto["aus"]) * w["max_unmeasured"]
        ):
            continue
        support = sum(present) / len(measured)
        if support > best_support:
            best, best_support = emotion, support
    return best if best_support >= w["min_support"] else None


def test_cited_numbers_are_the_reports(faces):
    threshold = wording()["threshold"]
    for name, face in faces:
        cot = compose_cot(face.action_units, face.emotion.label, face.emotion.scores, geometric=True)
        text = cot.text
        sections = _sections(text)
        assert list(sections) == list(COT_HEADINGS), name
        rounded = {au: float(f"{v:.2f}") for au, v in face.action_units.items()}

        cited = CITED.findall(text)
        for au, value in cited:
            assert value == f"{face.action_units[au]:.2f}", f"{name}: {au} cited {value}"

        # Key observations: exactly the AUs at or above the threshold, strongest first, with the right word.
        observed = [(au, v) for au, v in CITED.findall(sections["Key observations"])]
        expected = sorted(
            (au for au, v in rounded.items() if v >= threshold), key=lambda au: (-rounded[au], int(au[2:]))
        )
        assert [au for au, _ in observed] == expected, name
        for line in sections["Key observations"].splitlines():
            if m := CITED.search(line):
                value = float(m.group(2))
                word = [w for bound, w in wording()["strength"] if value >= bound][-1]
                assert f"{m.group(2)}, {word}" in line, line
        if not expected:
            assert "No action unit reaches" in sections["Key observations"]

        # Interpretation: "present" values are at or above the threshold, "absent" ones below.
        for sentence in re.split(r"(?<=\.) ", sections["Overall emotional interpretation"]):
            if "units are present" in sentence:
                assert all(float(v) >= threshold for _, v in CITED.findall(sentence)), sentence
            elif " present, " in sentence:
                present, _, absent = sentence.partition(" present, ")
                assert all(float(v) >= threshold for _, v in CITED.findall(present)), sentence
                assert all(float(v) < threshold for _, v in CITED.findall(absent)), sentence
        evidence = _evidence(rounded)
        assert cot.evidence == evidence, name
        if evidence:
            assert f"point most to {wording()['nouns'][evidence]}" in text

        # Conclusion: the classifier's label and confidence; disagreement said when the AUs point elsewhere.
        conclusion = sections["Conclusion"]
        assert conclusion.startswith(f"{face.emotion.label}:") and f"{face.emotion.score:.0%} confidence" in conclusion
        agrees = evidence == face.emotion.label or (evidence is None and face.emotion.label == "Neutral")
        assert ("agree." in conclusion or "fits this" in conclusion) == agrees, name
        if evidence and not agrees:
            assert "disagree" in conclusion or "partly" in conclusion


def test_geometry_blind_spots_are_named(faces):
    """Anger's AU7 and AU23 are not among the geometric cues: the text says so instead of guessing."""
    _, face = next((n, f) for n, f in faces if f.action_units.get("AU4", 0) >= wording()["threshold"])
    text = compose_cot(face.action_units, face.emotion.label, face.emotion.scores, geometric=True).text
    assert "AU7 and AU23 cannot be seen by the geometric cues" in text


def test_dataset_targets_conclude_with_the_given_label():
    happy = compose_cot({"AU6": 0.8, "AU12": 0.9, "AU25": 0.3}, "Happiness")
    assert happy.agreement == "agree" and happy.confidence is None
    assert (
        _sections(happy.text)["Conclusion"]
        == "The expression is best described as happy (Happiness). The action units agree."
    )
    conflict = compose_cot({"AU6": 0.8, "AU12": 0.9}, "Sadness")
    assert conflict.label == "Sadness" and conflict.agreement == "disagree"
    assert "the face as a whole reads as sadness" in conflict.conclusion  # targets speak about the photo
    missing = compose_cot({}, "Surprise")
    assert "not in the action unit data" in missing.interpretation
    assert "No action unit reaches 0.20" in missing.text and missing.agreement == "unsupported"
    neutral = compose_cot({"AU1": 0.05, "AU12": 0.1}, "Neutral", {"Neutral": 0.9})
    assert neutral.agreement == "agree" and "fits this" in neutral.conclusion


def test_full_annotations_use_every_prototype_unit():
    anger = compose_cot({"AU4": 0.7, "AU5": 0.5, "AU7": 0.6, "AU23": 0.4, "AU12": 0.0}, "Anger")
    assert anger.evidence == "Anger" and "all of its measured units are present" in anger.interpretation
    assert "cannot be seen" not in anger.text
    contempt = compose_cot({"AU12": 0.6, "AU14": 0.5}, "Contempt")
    assert "needs a one-sided movement" in contempt.interpretation


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="not an emotion label"):
        compose_cot({"AU12": 0.5}, "Joy")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compose_cot({"AU12": 3.0}, "Happiness")


def test_prototype_table_is_consistent():
    from faceqa.faces.action_units import FULL_SCALE

    table = emfacs()
    for emotion, proto in table["prototypes"].items():
        assert emotion in EMOTIONS
        assert all(au in table["aus"] for au in proto["aus"])
    assert set(FULL_SCALE) <= set(table["aus"])  # every cue the engine measures has its EMFACS wording
    assert set(wording()["nouns"]) == set(EMOTIONS)
