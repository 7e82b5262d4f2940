"""Read a model's answer as a canonical label, or say plainly that it cannot be read.

Models answer in every format: a bare word (PaliGemma), a sentence, markdown,
"Emotion: happy" lines, JSON, JSON inside a code fence, nested JSON. All of it
goes through the same taxonomy phrase matching, and the result is either one
label or an explicit unparsed result with the reason; a hedge ("not happy but
sad", "either Male or Female") is never turned into a confident label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .matching import words
from .taxonomy import ATTRIBUTES, field_names, resolve_label
from .templates import COT_HEADINGS, MCQ_LETTERS

# Keys under which a model puts "the answer" when it does not name the attribute.
_GENERIC_KEYS = frozenset({"answer", "label", "prediction", "predicted label", "value", "result", "output",
                           "class", "category", "final answer"})
_FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_FIELD_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z _/-]{0,40}?)\s*[:=]\s*(.*?)\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+\u2022>]|\d[.)])\s+")


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """`label` is a canonical label when `ok`; otherwise None and `reason` says why. `raw` is the input."""

    label: str | None
    ok: bool
    raw: str
    reason: str


def strip_markdown(text: str) -> str:
    """Text without emphasis, code marks, headings, bullets and quote marks; line breaks kept."""
    lines = []
    for line in text.splitlines():
        line = line.replace("**", "").replace("__", "").replace("`", "").replace("*", "")
        line = _BULLET.sub("", line.lstrip("# \t"))
        lines.append(line)
    return "\n".join(lines).strip()


def _json_documents(text: str) -> Iterator[Any]:
    """JSON values in the text: inside code fences if there are any, else the whole text or its {...} part."""
    fenced = [m.group(1) for m in _FENCE.finditer(text)]
    pieces = fenced or [text]
    for piece in pieces:
        piece = piece.strip()
        candidates = [piece]
        start, end = piece.find("{"), piece.rfind("}")
        if 0 <= start < end and (start, end) != (0, len(piece) - 1):
            candidates.append(piece[start:end + 1])
        for candidate in candidates:
            try:
                yield json.loads(candidate)
                break
            except ValueError:
                continue


def _key_matches(key: str, names: frozenset[str]) -> bool:
    return " ".join(words(key)) in names


def _json_values(value: Any, names: frozenset[str]) -> list[Any]:
    """Values stored under any of `names`, at any depth; an object value is read through its label key."""
    found: list[Any] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if _key_matches(str(key), names):
                found.append(_unwrap(inner))
            else:
                found += _json_values(inner, names)
    elif isinstance(value, list):
        for inner in value:
            found += _json_values(inner, names)
    return found


def _unwrap(value: Any) -> Any:
    """{"label": "happy", "score": 0.9} -> "happy"; anything else unchanged."""
    if isinstance(value, dict):
        inner = _json_values(value, _GENERIC_KEYS)
        return inner[0] if len(inner) == 1 else value
    return value


def _field_lines(text: str, names: frozenset[str]) -> list[str]:
    """Values of "Name: value" lines whose name is one of `names`."""
    values = []
    for line in strip_markdown(text).splitlines():
        match = _FIELD_LINE.match(line)
        if match and _key_matches(match.group(1), names) and match.group(2):
            values.append(match.group(2))
    return values


def _from_values(attribute: str, raw: str, values: list[Any]) -> ParsedAnswer:
    """One label when every value found for the attribute reads as the same label."""
    results = []
    for value in values:
        if isinstance(value, dict | list):
            return ParsedAnswer(None, False, raw, f"the {attribute} field holds {type(value).__name__} "
                                                  f"{json.dumps(value)[:80]}, not a label")
        if value is None:
            return ParsedAnswer(None, False, raw, f"the {attribute} field is null")
        results.append(resolve_label(attribute, value))
    failed = next((r for r in results if r.label is None), None)
    if failed is not None:
        return ParsedAnswer(None, False, raw, failed.reason)
    distinct = list(dict.fromkeys(r.label for r in results if r.label is not None))  # all are, after `failed`
    if len(distinct) > 1:
        return ParsedAnswer(None, False, raw, f"several {attribute} values: {', '.join(distinct)}")
    return ParsedAnswer(distinct[0], True, raw, results[0].reason)


def _parse(attribute: str, raw: str, documents: list[Any]) -> ParsedAnswer:
    names = field_names(attribute)
    if documents:
        for document in documents:
            if isinstance(document, dict | list):
                values = _json_values(document, names) or _json_values(document, _GENERIC_KEYS)
            else:
                values = [document]
            if not values and isinstance(document, list) and not any(isinstance(v, dict | list) for v in document):
                values = document  # a bare list of answers: ["happy"], [62]
            if values:
                return _from_values(attribute, raw, values)
        return ParsedAnswer(None, False, raw, f"the JSON answer has no {attribute} field")
    values = _field_lines(raw, names) or _field_lines(raw, _GENERIC_KEYS)
    if values:
        return _from_values(attribute, raw, values)
    result = resolve_label(attribute, strip_markdown(raw))
    return ParsedAnswer(result.label, result.label is not None, raw, result.reason)


def _check(attribute: str, text: str | None) -> str:
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; use one of {', '.join(ATTRIBUTES)}")
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TypeError(f"an answer is text, got {type(text).__name__}")
    return text


def parse_answer(attribute: str, text: str | None) -> ParsedAnswer:
    """The canonical `attribute` label a model's answer gives, or an unparsed result saying why not."""
    raw = _check(attribute, text)
    if not raw.strip():
        return ParsedAnswer(None, False, raw, "empty answer")
    return _parse(attribute, raw, list(_json_documents(raw)))


# --- chain of thought ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedReasoning:
    """The sections of a three-part reasoning answer and the emotion its Conclusion names."""

    sections: dict[str, str]
    emotion: ParsedAnswer
    complete: bool


def _heading(line: str) -> tuple[str, str] | None:
    """(heading, rest of the line) when a line opens one of the CoT sections."""
    plain = strip_markdown(line)
    for heading in COT_HEADINGS:
        match = re.match(rf"\s*(?:\d[.)]\s*)?{re.escape(heading)}\s*(?::|-|\n|$)\s*(.*)$", plain, re.IGNORECASE)
        if match:
            return heading, match.group(1)
    return None


def parse_reasoning(text: str | None) -> ParsedReasoning:
    """Split an ExpLLM-style answer into its headed sections; the emotion is read from Conclusion only.

    Reading the label from the whole text would pick up every emotion the
    interpretation weighs; the conclusion is where the model commits, in its first
    sentence when the rest names other emotions (the trained layout: "Sad (Sadness).
    The action units point to anger ...").
    """
    raw = _check("emotion", text)
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in raw.splitlines():
        opened = _heading(line)
        if opened is not None:
            current = opened[0]
            sections[current] = [opened[1]] if opened[1] else []
        elif current is not None:
            sections[current].append(line)
    joined = {h: "\n".join(lines).strip() for h, lines in sections.items()}
    conclusion = COT_HEADINGS[-1]
    if conclusion in joined:
        emotion = parse_answer("emotion", joined[conclusion])
        first = re.split(r"(?<=[.!?])\s", joined[conclusion], maxsplit=1)[0]
        if not emotion.ok and first != joined[conclusion]:  # the commitment first, then what weighs against it
            emotion = parse_answer("emotion", first)
        emotion = ParsedAnswer(emotion.label, emotion.ok, raw, emotion.reason)
    else:
        emotion = ParsedAnswer(None, False, raw, f"no {conclusion} section")
    return ParsedReasoning(joined, emotion, all(h in joined for h in COT_HEADINGS))


# --- multiple choice ----------------------------------------------------------------------------

CHOICE_LETTERS = "".join(MCQ_LETTERS)
_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-D])\)?(?![A-Za-z])")
_ARTICLE = re.compile(r"A\s+(?!is\b|was\b|or\b|and\b)[a-z]")  # "A woman ...": the article, not option A
_ANSWER_LEAD = re.compile(r"(?:final\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:=]?\s*", re.IGNORECASE)


def _option_text(option: object) -> str:
    return " ".join(words(str(option)))


def parse_choice(text: str | None, options: list | tuple) -> ParsedAnswer:
    """The option letter (A-D) a multiple-choice answer picks, or unparsed with the reason.

    A bare letter ("B", "(B)", "B) 20-29", "Answer: B") wins; otherwise the answer may
    quote exactly one option's text. Two different letters, or text naming several
    options, is a hedge and stays unparsed.
    """
    if text is not None and not isinstance(text, str):
        raise TypeError(f"an answer is text, got {type(text).__name__}")
    raw = text or ""
    letters = CHOICE_LETTERS[:len(options)]
    plain = strip_markdown(raw)
    if not plain:
        return ParsedAnswer(None, False, raw, "empty answer")
    lead = _ANSWER_LEAD.search(plain)
    candidates = plain[lead.end():] if lead else plain
    bare = re.fullmatch(r"\s*\(?([A-Da-d])\)?[.)]?\s*", candidates)
    found = [bare.group(1).upper()] if bare else [
        m.group(1) for m in _LETTER.finditer(candidates) if not _ARTICLE.match(candidates, m.start())]
    found = list(dict.fromkeys(f for f in found if f in letters))
    if len(found) == 1:
        return ParsedAnswer(found[0], True, raw, "option letter")
    if len(found) > 1:
        return ParsedAnswer(None, False, raw, f"several option letters: {', '.join(found)}")
    said = f" {_option_text(plain)} "
    quoted = [letters[i] for i, o in enumerate(options[:len(letters)])
              if _option_text(o) and f" {_option_text(o)} " in said]
    if len(quoted) == 1:
        return ParsedAnswer(quoted[0], True, raw, "option text")
    if quoted:
        return ParsedAnswer(None, False, raw, f"names several options: {', '.join(quoted)}")
    return ParsedAnswer(None, False, raw, f"no option letter ({', '.join(letters)}) or option text")
