"""Prompt templates, target answers and structured-output schemas, from `data/templates.toml` and `schemas.json`.

The questions a VLM is asked live in data so the dataset builder, the VLM backends
and the evaluator ask the same thing in the same words. Paraphrases are picked
deterministically: `seed=None` gives the canonical (first) one, an integer seed a
stable pseudo-random one, the same on every machine and Python run.
"""

from __future__ import annotations

import copy
import json
import random
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .taxonomy import ATTRIBUTES, display, labels

STYLES = ("paligemma", "chat")


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    description: str
    attribute: str | None
    questions: Mapping[str, tuple[str, ...]]
    answers: Mapping[str, Any]
    answer_case: str | None
    lines: Mapping[str, tuple[str, ...]]


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(f"data/{name}").read_text(encoding="utf-8")


@cache
def _templates() -> dict:
    return tomllib.loads(_read("templates.toml"))


@cache
def _schemas() -> dict:
    return {k: v for k, v in json.loads(_read("schemas.json")).items() if not k.startswith("_")}


@cache
def _tasks() -> dict[str, Task]:
    found = {}
    for name, spec in _templates()["tasks"].items():
        attribute = spec.get("attribute")
        if attribute is not None and attribute not in ATTRIBUTES:
            raise ValueError(f"templates.toml: task {name} has unknown attribute {attribute!r}")
        missing = [s for s in STYLES if not spec.get(s)]
        if missing:
            raise ValueError(f"templates.toml: task {name} has no {', '.join(missing)} questions")
        if name not in _schemas():
            raise ValueError(f"schemas.json: no schema for task {name}")
        found[name] = Task(name, spec["description"], attribute, {s: tuple(spec[s]) for s in STYLES},
                           spec.get("answers", {}), spec.get("answer_case"),
                           {s: tuple(v) for s, v in spec.get("lines", {}).items()})
    return found


def tasks() -> tuple[str, ...]:
    """Names of every task with templates."""
    return tuple(_tasks())


def task(name: str) -> Task:
    if name not in _tasks():
        raise ValueError(f"unknown task {name!r}; use one of {', '.join(_tasks())}")
    return _tasks()[name]


def system_prompt() -> str:
    """System message for chat models: apparent attributes, exact label names."""
    return _templates()["system"]["chat"]


def _style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; use one of {', '.join(STYLES)}")
    return style


def _pick(options: Sequence[str], key: str, seed: int | None) -> str:
    if seed is None:
        return options[0]
    return options[random.Random(f"{key}|{seed}").randrange(len(options))]


def _expand(attribute: str | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's fields plus the derived ones; attribute values are checked against the taxonomies."""
    out = dict(fields)
    if attribute is not None:
        if "label" in out and attribute in out and out["label"] != out[attribute]:
            raise ValueError(f"label={out['label']!r} and {attribute}={out[attribute]!r} disagree")
        if "label" in out or attribute in out:
            out["label"] = out[attribute] = out.get("label", out.get(attribute))
            out["display"] = display(attribute, out["label"])
        out.setdefault("options", ", ".join(labels(attribute)))
    for name in ATTRIBUTES:
        out.setdefault(f"{name}_options", ", ".join(labels(name)))
        if name in out:
            out[f"{name}_display"] = display(name, out[name])
    if "count" in out:
        out.setdefault("people_word", "person" if out["count"] == 1 else "people")
        out.setdefault("verb", "is" if out["count"] == 1 else "are")
    if isinstance(out.get("ids"), list | tuple):
        ids = [int(i) for i in out["ids"]]
        out["id_list"] = ", ".join(map(str, ids)) if ids else "none"
        out["persons"] = " and ".join(f"person {i}" for i in ids) if ids else "nobody"
    if isinstance(out.get("referent"), str):
        out["Referent"] = out["referent"][:1].upper() + out["referent"][1:]
    if isinstance(out.get("ordinal"), int):
        out["ordinal"] = ordinal(out["ordinal"])
    out.setdefault("noun", _templates()["referents"]["nouns"].get(out.get("gender"), "person"))
    return out


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Fill a template; a missing field is a clear error naming it, not a KeyError deep in format()."""
    needed = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = sorted(needed - set(fields))
    if missing:
        raise ValueError(f"template {template!r} needs field(s) {', '.join(missing)}")
    return template.format_map(fields)


def questions(name: str, style: str = "chat") -> tuple[str, ...]:
    """Every paraphrase (unfilled) of a task's question in one style; the first is canonical."""
    return task(name).questions[_style(style)]


def question(name: str, style: str = "chat", seed: int | None = None, **fields: Any) -> str:
    """A task's question, filled: `question("person_age_group", referent="man on the left")`."""
    t = task(name)
    return render(_pick(questions(name, style), f"{name}/{style}/question", seed), _expand(t.attribute, fields))


def answer(name: str, style: str = "chat", seed: int | None = None, **fields: Any) -> str:
    """The target answer of a task in one style ("json" gives the structured answer as JSON text).

    Single-label tasks take `label=` (or the attribute name), `reasoning` takes
    `observations`, `interpretation`, `emotion`, `describe` takes `people` (dicts).
    """
    t = task(name)
    if style == "json" or name == "attributes":
        return json.dumps(structured(name, **fields), ensure_ascii=False)
    style = _style(style)
    values = _expand(t.attribute, fields)
    if name == "reasoning":
        values = _project(json_schema(name), values)  # checks the three fields are there
        conclusion = render(_pick(_templates()["cot"]["conclusion"], "cot/conclusion", seed),
                            _expand(None, {"emotion": values["emotion"]}))
        return render_cot(values["observations"], values["interpretation"], conclusion)
    if name == "describe":
        if not isinstance(values.get("people"), list | tuple):
            raise ValueError("task describe needs people=[{id, referent, gender, age_group, emotion}, ...]")
        values.setdefault("count", len(values["people"]))
        values = _expand(None, values)
    options = t.answers[style]
    if t.answer_case is not None:
        if t.answer_case not in values:
            raise ValueError(f"task {name} needs the field {t.answer_case!r} to pick its answer")
        options = options[str(values[t.answer_case]).lower()]
    text = render(_pick(options, f"{name}/{style}/answer", seed), values)
    if t.lines:
        line = _pick(t.lines[style], f"{name}/{style}/line", seed)
        text = "\n".join([text, *(render(line, _expand(None, person)) for person in values["people"])])
    return text


def _schema(node: Any) -> Any:
    if isinstance(node, dict):
        if "$labels" in node:
            return {"type": "string", "enum": list(labels(node["$labels"]))}
        return {k: _schema(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_schema(v) for v in node]
    return node


def json_schema(name: str) -> dict:
    """JSON Schema of a task's structured answer, enums filled from the taxonomies (a fresh copy)."""
    task(name)
    return copy.deepcopy(_schema(_schemas()[name]))


def response_format(name: str) -> dict:
    """OpenAI-style `response_format` (strict json_schema), as accepted by vLLM's OpenAI server."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": json_schema(name), "strict": True}}


def choices(name: str) -> list[str]:
    """Allowed answers of a single-label task, for vLLM's `structured_outputs={"choice": ...}`."""
    t = task(name)
    if t.attribute is None:
        raise ValueError(f"task {name} has no closed list of answers; use json_schema({name!r})")
    return list(labels(t.attribute))


def _project(schema: dict, value: Any) -> Any:
    """`value` cut to what `schema` describes: the declared properties of objects, recursively."""
    if schema.get("type") == "object":
        if not isinstance(value, Mapping):
            raise ValueError(f"structured answer: expected an object, got {value!r}")
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            raise ValueError(f"structured answer needs field(s) {', '.join(missing)}")
        return {k: _project(s, value[k]) for k, s in schema["properties"].items() if k in value}
    if schema.get("type") == "array":
        return [_project(schema["items"], v) for v in value]
    return value


def structured(name: str, **fields: Any) -> dict:
    """A task's structured answer (matching `json_schema(name)`) from the same fields `answer` takes."""
    t = task(name)
    values = _expand(t.attribute, fields)
    for person in values.get("people") or []:
        _expand(None, person)  # checks every person's labels
    return _project(json_schema(name), values)


# --- referring expressions and the chain-of-thought layout --------------------------------------


@cache
def _ordinal_words() -> list[str]:
    """The ordinal words of `vocabulary.toml` (the ones the assistant reads), in order of position."""
    positions = tomllib.loads(_read("vocabulary.toml"))["ordinals"]
    return sorted((w for w, n in positions.items() if n > 0), key=positions.__getitem__)


def ordinal(n: int) -> str:
    """ "first", "second", ... for n = 1, 2, ... (digits with a suffix past the listed words)."""
    if n < 1:
        raise ValueError(f"ordinal of {n}: positions count from 1")
    words = _ordinal_words()
    if n <= len(words):
        return words[n - 1]
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def referent(kind: str, seed: int | None = None, **fields: Any) -> str:
    """A referring expression: `referent("ordinal", ordinal=2, side="left")` -> "second person from the left"."""
    spec = _templates()["referents"]
    kinds = [k for k, v in spec.items() if isinstance(v, list)]
    if kind not in kinds:
        raise ValueError(f"unknown referent kind {kind!r}; use one of {', '.join(kinds)}")
    values = _expand(None, fields)
    usable = [t for t in spec[kind] if "{noun}" not in t or "gender" in fields] or spec[kind]
    return render(_pick(usable, f"referent/{kind}", seed), values)


COT_HEADINGS: tuple[str, ...] = tuple(_templates()["cot"]["headings"])
MCQ_LETTERS: tuple[str, ...] = tuple(_templates()["mcq"]["letters"])


def render_cot(observations: Sequence[str], interpretation: str, conclusion: str) -> str:
    """The three-part reasoning text, one bullet per observation."""
    if isinstance(observations, str) or not observations:
        raise ValueError("observations must be a non-empty list of sentences")
    cot = _templates()["cot"]
    bullets = "\n".join(cot["observation"].format(o) for o in observations)
    return cot["layout"].format(observations=bullets, interpretation=interpretation, conclusion=conclusion)


def mcq_prompt(question: str, options: Sequence[object], instruction: str | None = None, context: str = "") -> str:
    """A multiple-choice question as FaceXBench asks it: question, instruction, "(A) option" lines."""
    mcq = _templates()["mcq"]
    if not 2 <= len(options) <= len(MCQ_LETTERS):
        raise ValueError(f"a multiple-choice question needs 2 to {len(MCQ_LETTERS)} options, got {len(options)}")
    lines = "\n".join(mcq["option"].format(letter=letter, option=option)
                      for letter, option in zip(MCQ_LETTERS, options, strict=False))
    return mcq["layout"].format(context=f"{context.strip()}\n" if context.strip() else "", question=question.strip(),
                                instruction=(instruction or mcq["instruction"]).strip(), options=lines)


def marks_prompt(question: str, faces: Sequence[tuple[int, str]]) -> str:
    """A question about a photo with numbered boxes drawn on it, the engine's per-face summaries as context."""
    marks = _templates()["marks"]
    ids = [i for i, _ in faces]
    listed = ", ".join(map(str, ids[:-1])) + f" and {ids[-1]}" if len(ids) > 1 else str(ids[0]) if ids else "none"
    context = marks["context"].format(ids=listed, faces="\n".join(marks["face"].format(id=i, summary=s)
                                                                  for i, s in faces) or "- none")
    return marks["open"].format(context=context, question=question.strip())
