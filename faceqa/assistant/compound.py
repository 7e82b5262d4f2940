"""Compound questions: "how many people are there, and what is the gender of the person on the far left?"
-> ["how many people are there", "what is the gender of the person on the far left"].

A normalised question is cut at sentence breaks (" ; "), and at "and" or a comma when what
follows starts a question of its own (a question word: "and who is the youngest", ", how many
are kids"). "Are person 1 and 3 the same person?" and "the age, gender and emotion of ..." stay
whole: no question word follows their "and". A part that only asks for reasoning ("explain step by
step") belongs to the part before it; "are there more men than women?" is the two counts. Every part is
answered, in order.
"""

from __future__ import annotations

import re

from .vocabulary import tokens

STARTS = tokens(
    "how what who whom which whose is are was were does do did can could would will tell describe explain count "
    "why where when name give list show compare"
)
# A part made only of these words asks for reasoning about the part before it ("Is she smiling? Explain step by
# step."): it is joined to that part, not answered alone.
_MODIFIER = tokens(
    "explain explanation step by why walk me through please your reasoning reason it that justify how do "
    "you know tell show work and so also"
)
_JOINT = re.compile(r"\s*(?:,\s*)?\band\b\s*(?:,\s*)?|\s*,\s*")
_SEPARATORS = re.compile(r"\s*[;,]\s*")
# "are there more men than women?" is two counts: the answer gives both rather than a yes/no on one of them.
_MORE_THAN = re.compile(
    r"^(?:are there|is there|do we have|do i see) (?:more|fewer|less) (\w+(?: \w+)?) than (\w+(?: \w+)?)$"
)


def split(text: str) -> list[str]:
    """The parts of a normalised question, separators removed (one part for a simple question)."""
    parts = []
    for sentence in text.split(";"):
        if m := _MORE_THAN.match(" ".join(_SEPARATORS.sub(" ", sentence).split())):
            parts += [f"how many {m.group(1)} are there", f"how many {m.group(2)} are there"]
            continue
        parts += _split_sentence(sentence)
    cleaned = [" ".join(_SEPARATORS.sub(" ", p).split()) for p in parts]
    joined: list[str] = []
    for part in (p for p in cleaned if p):
        if joined and set(part.split()) <= _MODIFIER:
            joined[-1] += " " + part
        else:
            joined.append(part)
    return joined or [" ".join(_SEPARATORS.sub(" ", text).split())]


def _split_sentence(sentence: str) -> list[str]:
    parts, start = [], 0
    for m in _JOINT.finditer(sentence):
        after = sentence[m.end() :].split()
        before = sentence[start : m.start()].split()
        if after and before and after[0] in STARTS and _asks(before):
            parts.append(sentence[start : m.start()])
            start = m.end()
    parts.append(sentence[start:])
    return parts


def _asks(words: list[str]) -> bool:
    """Whether the words before a joint are a question of their own (not "person 1 and" of a list)."""
    return len(words) >= 2 and words[0] in STARTS
