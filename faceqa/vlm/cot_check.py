"""A VLM's expression chain of thought, held against what the engine measured.

The model is asked for the Exp-CoT layout the dataset builder trains (`faceqa.prompts`:
Key observations -> Overall emotional interpretation -> Conclusion, observations as
"AUn name (...) 0.00, strength"). This module parses that answer with the shared
`parse_reasoning`, finds every action unit it cites (with the number and/or the FACS
intensity word it gives), and compares each with the engine's geometric cue for the
same face, and its conclusion with the engine's emotion estimate. What disagrees is
reported in words ("the model cites a strong brow lowerer (AU4); the measured cue is
weak, 0.08"); AUs the cues do not measure are named as uncheckable, never counted as
agreeing. Nothing is corrected: the model's text is shown as it is, with the check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from faceqa.prompts.cot import emfacs, wording
from faceqa.prompts.parser import ParsedReasoning, parse_reasoning
from faceqa.prompts.templates import COT_HEADINGS
from faceqa.schema import LabelScore

Kind = Literal["au", "unmeasured", "conclusion", "format"]
_AU = re.compile(r"\bAU\s?(\d{1,2})\b")
_VALUE = re.compile(r"(?<![\d.])(0?\.\d+|1\.0+|[01])(?![\d.])")


@dataclass(frozen=True)
class CitedAU:
    au: str
    value: float | None  # the number the model gives, if any
    strength: str | None  # the intensity word it gives, if any


@dataclass(frozen=True)
class Disagreement:
    kind: Kind
    text: str
    au: str | None = None
    cited: float | str | None = None
    measured: float | None = None


@dataclass(frozen=True)
class CheckedCoT:
    parsed: ParsedReasoning
    cited: tuple[CitedAU, ...]
    agreeing: tuple[str, ...]  # cited AUs whose measured cue agrees
    disagreements: tuple[Disagreement, ...]
    conclusion: str | None  # the emotion the model concludes, if readable
    estimate: str | None  # the engine's emotion label
    conclusion_agrees: bool | None  # None when either side is missing

    @property
    def parsed_ok(self) -> bool:
        """The answer has all three sections and a conclusion naming one emotion."""
        return self.parsed.complete and self.parsed.emotion.ok

    @property
    def checkable(self) -> int:
        return len(self.agreeing) + sum(d.kind == "au" for d in self.disagreements)

    @property
    def consistency(self) -> float | None:
        """Share of the cited, measurable AUs that agree with the measured cues (None when none is checkable)."""
        return len(self.agreeing) / self.checkable if self.checkable else None

    def note(self) -> str:
        """The check in words: a summary line, then one bullet per disagreement."""
        w = wording()["check"]
        if self.conclusion_agrees is None:
            tail = ""
        else:
            tail = w["summary_conclusion_agrees" if self.conclusion_agrees else "summary_conclusion_differs"]
        lines = [w["summary"].format(agree=len(self.agreeing), checkable=self.checkable, conclusion=tail)]
        if self.disagreements:
            lines += [w["disagreements"], *(f"- {d.text}" for d in self.disagreements)]
        return "\n".join(lines)


def band(value: float) -> str:
    """The FACS-style intensity word of a value ("weak" below the observation threshold)."""
    w = wording()
    word = w["check"]["weak"]
    for bound, name in w["strength"]:
        if value >= bound:
            word = name
    return word


def _strength_words() -> list[str]:
    return [name for _, name in wording()["strength"]]


def cited_aus(text: str) -> tuple[CitedAU, ...]:
    """Each AU the text cites, first citation first: the number after it and the intensity word near it."""
    found: dict[str, CitedAU] = {}
    words = _strength_words()
    for line in text.splitlines():
        matches = list(_AU.finditer(line))
        for i, match in enumerate(matches):
            au = f"AU{int(match.group(1))}"
            start = match.start() if i else 0  # words before an AU belong to it only when it opens the line
            end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
            rest = line[match.end():end]
            value = _VALUE.search(rest)
            around = line[start:end]  # "a strong brow lowerer (AU4)" puts the word before the AU
            strength = next((w for w in words if re.search(rf"\b{w}\b", around, re.IGNORECASE)), None)
            if au not in found or (found[au].value is None and value is not None):
                found[au] = CitedAU(au, float(value.group(1)) if value else None, strength)
    return tuple(found.values())


def _name(au: str) -> str:
    return emfacs()["aus"].get(au, ["action unit"])[0]


def _compare(cited: CitedAU, measured: float) -> bool:
    tolerance = wording()["check"]["tolerance"]
    if cited.value is not None and abs(cited.value - measured) <= tolerance + 1e-9:
        return True
    said = cited.strength or (band(cited.value) if cited.value is not None else None)
    return said is None or said == band(measured)  # an AU named with neither number nor word claims nothing


def check_cot(text: str, action_units: Mapping[str, float], emotion: LabelScore | None) -> CheckedCoT:
    """Parse a model's Exp-CoT answer and hold each cited AU and its conclusion against the measurements."""
    from faceqa.prompts.taxonomy import display

    w = wording()["check"]
    parsed = parse_reasoning(text)
    observations = parsed.sections.get(COT_HEADINGS[0])
    cited = cited_aus(observations if observations is not None else text)
    agreeing, disagreements = [], []
    for c in cited:
        if c.au not in action_units:
            disagreements.append(Disagreement("unmeasured", w["unmeasured"].format(au=c.au, name=_name(c.au)), c.au))
            continue
        measured = float(action_units[c.au])
        if _compare(c, measured):
            agreeing.append(c.au)
            continue
        said = c.strength or band(c.value if c.value is not None else 0.0)
        cited_text = said if c.value is None else f"{said} ({c.value:.2f})"
        disagreements.append(Disagreement("au", w["cited_au"].format(
            cited=cited_text, name=_name(c.au), au=c.au, measured=band(measured), value=measured),
            c.au, c.value if c.value is not None else said, measured))
    missing = [h for h in COT_HEADINGS if h not in parsed.sections]
    if missing:
        disagreements.append(Disagreement("format", w["incomplete"].format(missing=", ".join(missing))))
    conclusion = parsed.emotion.label if parsed.emotion.ok else None
    if conclusion is None and COT_HEADINGS[-1] in parsed.sections:
        disagreements.append(Disagreement("format", w["no_conclusion"].format(reason=parsed.emotion.reason)))
    agrees = None if conclusion is None or emotion is None else conclusion == emotion.label
    if agrees is False and emotion is not None and conclusion is not None:
        disagreements.append(Disagreement("conclusion", w["conclusion"].format(
            concluded=display("emotion", conclusion), estimate=display("emotion", emotion.label),
            confidence=emotion.score)))
    return CheckedCoT(parsed, cited, tuple(agreeing), tuple(disagreements), conclusion,
                      emotion.label if emotion else None, agrees)
