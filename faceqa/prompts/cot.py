"""Exp-CoT: the three-part expression reasoning, composed from action-unit intensities.

Key observations -> overall emotional interpretation (EMFACS prototypes) -> conclusion.
The text only says what the numbers say: every intensity is cited as "AUn 0.00"
from the input, an AU is "present" only at the data file's threshold or more, and
the prototypes' AUs that the input does not measure are named as unseen rather
than guessed. The same function writes the assistant's reasoning (classifier
label and scores) and the dataset builder's CoT targets (a ground-truth label).

A CoT reads two ways, both in the one three-part layout (`templates.render_cot`) with
the same "AUn name 0.00, strength" observations, so one parser and one check
(`faceqa.vlm.cot_check`) read either: `text`, the assistant's full explanation, and
`brief`, what a VLM is trained to answer: the few strongest action units (ExpLLM cites
a handful), the one prototype that decides, and the emotion. A full target is 450-850
characters; a model must reproduce every token of it before its conclusion is read.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from faceqa.prompts.taxonomy import EMOTIONS, display
from faceqa.prompts.templates import render_cot

Agreement = Literal["agree", "partial", "disagree", "unsupported"]
_AU_KEY = re.compile(r"AU\d+")


@cache
def _data(name: str) -> dict:
    return tomllib.loads(resources.files("faceqa.prompts").joinpath(f"data/{name}").read_text(encoding="utf-8"))


def emfacs() -> dict:
    """AU names and the EMFACS prototype table (prompts/data/emfacs.toml)."""
    return _data("emfacs.toml")


def wording() -> dict:
    return _data("cot_wording.toml")


@dataclass(frozen=True)
class Observation:
    au: str
    intensity: float  # as cited: two decimals
    strength: str


@dataclass(frozen=True)
class PrototypeMatch:
    emotion: str
    aus: tuple[str, ...]
    present: dict[str, float]
    absent: dict[str, float]
    unmeasured: tuple[str, ...]
    support: float  # mean intensity over the measured AUs of the prototype, absent ones counting 0
    coverage: float  # share of the measured AUs that are present


@dataclass(frozen=True)
class CoT:
    observations: tuple[Observation, ...]
    matches: tuple[PrototypeMatch, ...]  # the prototypes the interpretation mentions, best first
    evidence: str | None  # emotion the AUs alone point to, if any prototype is matched strongly enough
    label: str
    confidence: float | None  # the classifier's, when the label came from one
    agreement: Agreement
    observation_lines: tuple[str, ...]
    interpretation: str
    conclusion: str

    @property
    def text(self) -> str:
        return render_cot(self.observation_lines, self.interpretation, self.conclusion)

    @property
    def brief(self) -> str:
        """The concise Exp-CoT (the dataset builder's targets, what the VLM is asked for): see the module."""
        b = wording()["brief"]
        key = self.observations[: b["key_aus"]]
        lines = [b["observation"].format(au=o.au, name=_name(o.au)[0], value=o.intensity, strength=o.strength)
                 for o in key] or [wording()["sentences"]["none_observed"].format(threshold=wording()["threshold"])]
        matched = next((m for m in self.matches if m.emotion == self.label), None)
        if matched is not None:
            interpretation = b["prototype"].format(combo=_combo(matched.aus), noun=_noun(matched.emotion))
        elif self.evidence is not None:
            interpretation = b["points_to"].format(noun=_noun(self.evidence), label_noun=_noun(self.label))
        else:
            interpretation = b["none_matched"].format(label_noun=_noun(self.label))
        conclusion = b["conclusion"].format(label=self.label)
        return render_cot(lines, interpretation, conclusion)


def _cited(value: float) -> float:
    """The value as the text prints it; thresholds are judged on this so text and decision agree."""
    return float(f"{value:.2f}")


def _name(au: str) -> tuple[str, str]:
    return tuple(emfacs()["aus"].get(au, ("action unit", f"FACS {au}")))


def _strength(value: float) -> str:
    word = ""
    for bound, name in wording()["strength"]:
        if value >= bound:
            word = name
    return word


def _combo(aus: tuple[str, ...]) -> str:
    return " + ".join(aus)


def _cite(values: Mapping[str, float]) -> str:
    return _and([f"{au} {v:.2f}" for au, v in values.items()])


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _noun(label: str) -> str:
    return wording()["nouns"][label]


def _observations(values: dict[str, float], geometric: bool) -> tuple[tuple[Observation, ...], list[str]]:
    w = wording()
    seen = sorted(
        ((au, v) for au, v in values.items() if v >= w["threshold"]), key=lambda item: (-item[1], int(item[0][2:]))
    )
    observations = tuple(Observation(au, v, _strength(v)) for au, v in seen)
    lines = []
    for o in observations:
        name, plain = _name(o.au)
        note = w["geometric"].get(o.au) if geometric else None
        template = w["sentences"]["observation_note" if note else "observation"]
        lines.append(
            template.format(au=o.au, name=name, plain=plain, value=o.intensity, strength=o.strength, note=note)
        )
    if not lines:
        lines.append(w["sentences"]["none_observed"].format(threshold=w["threshold"]))
    return observations, lines


def _match(emotion: str, aus: tuple[str, ...], values: dict[str, float]) -> PrototypeMatch:
    threshold = wording()["threshold"]
    measured = [au for au in aus if au in values]
    present = {au: values[au] for au in measured if values[au] >= threshold}
    absent = {au: values[au] for au in measured if values[au] < threshold}
    n = len(measured)
    return PrototypeMatch(
        emotion=emotion,
        aus=aus,
        present=present,
        absent=absent,
        unmeasured=tuple(au for au in aus if au not in values),
        support=sum(present.values()) / n if n else 0.0,
        coverage=len(present) / n if n else 0.0,
    )


def _describe_match(m: PrototypeMatch, unseen: str) -> str:
    s = wording()["sentences"]
    fields = {"combo": _combo(m.aus), "noun": _noun(m.emotion)}
    if m.absent:
        text = s["prototype_some"].format(**fields, seen=_cite(m.present), absent=_cite(m.absent))
    else:
        text = s["prototype_all"].format(**fields, seen=_cite(m.present))
    if m.unmeasured:
        text += " " + s["unmeasured"].format(aus=_and(list(m.unmeasured)), unseen=unseen)
    return text


def _sided(values: Mapping[str, float]) -> bool:
    return any(not _AU_KEY.fullmatch(key) for key in values)


def compose_cot(
    action_units: Mapping[str, float], label: str, scores: Mapping[str, float] | None = None, *, geometric: bool = False
) -> CoT:
    """Reason from AU intensities in [0, 1] to `label` (always the conclusion).

    `scores` is the classifier's distribution when the label is a prediction; leave it
    None for a ground-truth label (dataset CoT targets). `geometric` marks cues measured
    from landmarks (the embedded engine), so the text says which AUs those cannot see.
    """
    if label not in EMOTIONS:
        raise ValueError(f"{label!r} is not an emotion label; use one of {', '.join(EMOTIONS)}")
    bad = {au: v for au, v in action_units.items() if not 0.0 <= float(v) <= 1.0}
    if bad:
        raise ValueError(f"AU intensities must be in [0, 1] (scale FACS A-E or 0-5 data first), got {bad}")
    w, s = wording(), wording()["sentences"]
    values = {au: _cited(float(v)) for au, v in action_units.items()}
    unseen = w["geometric" if geometric else "labels"]["unseen"]
    observations, observation_lines = _observations(values, geometric)

    prototypes = emfacs()["prototypes"]
    scored = {
        emotion: _match(emotion, tuple(p["aus"]), values)
        for emotion, p in prototypes.items()
        if not (p.get("unilateral") and not _sided(values))
    }
    matches = sorted(
        (
            m
            for m in scored.values()
            if m.present and m.coverage >= w["min_coverage"] and len(m.unmeasured) <= len(m.aus) * w["max_unmeasured"]
        ),
        key=lambda m: (-m.support, m.emotion),
    )
    evidence = matches[0].emotion if matches and matches[0].support >= w["min_support"] else None

    sentences = [_describe_match(m, unseen) for m in matches]
    if label in prototypes and label not in scored:
        sentences.append(s["unilateral"].format(combo=_combo(tuple(prototypes[label]["aus"])), noun=_noun(label)))
    elif label in scored and scored[label] not in matches:
        m = scored[label]
        cited = [_cite({**m.present, **m.absent})] if m.present or m.absent else []
        cited += (
            [s["unmeasured"].format(aus=_and(list(m.unmeasured)), unseen=unseen).rstrip(".")] if m.unmeasured else []
        )
        sentences.append(
            s["label_prototype_missing"].format(noun=_noun(label), combo=_combo(m.aus), seen_or_none="; ".join(cited))
        )
    if evidence:
        sentences.append(s["points_to"].format(noun=_noun(evidence)))
    elif matches:
        sentences.append(s["weak"].format(min_support=w["min_support"]))
    else:
        sentences.append(s["none_matched"])
    if geometric and observations:
        sentences.append(w["geometric"]["caveat"])

    agreement = _agreement(label, evidence, matches)
    confidence = None if scores is None else float(scores.get(label, 0.0))
    return CoT(
        observations=observations,
        matches=tuple(matches),
        evidence=evidence,
        label=label,
        confidence=confidence,
        agreement=agreement,
        observation_lines=tuple(observation_lines),
        interpretation=" ".join(sentences),
        conclusion=_conclusion(label, confidence, evidence, agreement),
    )


def _agreement(label: str, evidence: str | None, matches: list[PrototypeMatch]) -> Agreement:
    if evidence == label or (label == "Neutral" and evidence is None):
        return "agree"
    if any(m.emotion == label for m in matches):
        return "partial"
    return "disagree" if evidence else "unsupported"


def _conclusion(label: str, confidence: float | None, evidence: str | None, agreement: Agreement) -> str:
    c = wording()["conclusion"]
    fields = {"label": label, "display": display("emotion", label), "noun": _noun(label)}
    fields["evidence"] = _noun(evidence) if evidence else ""
    classifier = confidence is not None
    head = c["classifier"].format(**fields, confidence=confidence) if classifier else c["annotated"].format(**fields)
    if agreement == "agree":
        tail = c["agree_neutral" if label == "Neutral" else "agree"]
    elif agreement == "partial":
        tail = c["partial" if evidence else "weak_match"]
    elif agreement == "disagree":
        tail = c["disagree_classifier" if classifier else "disagree_annotated"]
    else:
        tail = c["unsupported_classifier" if classifier else "unsupported_annotated"]
    return f"{head} {tail.format(**fields)}"
