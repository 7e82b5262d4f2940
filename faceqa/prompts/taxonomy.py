"""Canonical label sets, loaded once from `data/taxonomies.toml`, and the ways into them.

Labels are data, not code: every component that names an age group, a gender,
a race or an emotion takes the string from here, so two parts of faceqa can
never disagree on spelling. Free text reaches a label through `normalize`
(synonyms, ages in years, "30s", "70+"); other datasets' labels through
`map_label` (mappings.toml), which never picks one of several classes silently.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from .ages import AgeSpan, find_ages
from .matching import Mention, Text, Vocabulary, words

ATTRIBUTES = ("race", "gender", "age_group", "emotion")


def _data(name: str) -> dict:
    return tomllib.loads(resources.files(__package__).joinpath(f"data/{name}").read_text(encoding="utf-8"))


@cache
def _taxonomies() -> dict:
    return _data("taxonomies.toml")


def _attribute(attribute: str) -> dict:
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; use one of {', '.join(ATTRIBUTES)}")
    return _taxonomies()[attribute]


def labels(attribute: str) -> tuple[str, ...]:
    """Canonical labels of `attribute` ("race", "gender", "age_group", "emotion")."""
    return tuple(_attribute(attribute)["labels"])


RACES = labels("race")
GENDERS = labels("gender")
AGE_GROUPS = labels("age_group")
EMOTIONS = labels("emotion")


def age_group(years: float) -> str:
    """FairFace age group holding an age in years (ages are floored: 2.9 is still 0-2)."""
    if years < 0:
        raise ValueError(f"age must be non-negative, got {years}")
    bounds = _taxonomies()["age_group"]["lower_bounds"]
    return AGE_GROUPS[bisect.bisect_right(bounds, int(years)) - 1]


def display(attribute: str, label: str) -> str:
    """How `label` reads inside a sentence: "happy" for Happiness, "Latino/Hispanic" for Latino_Hispanic."""
    if label not in labels(attribute):
        raise ValueError(f"{label!r} is not one of the {attribute} labels: {', '.join(labels(attribute))}")
    return _attribute(attribute).get("display", {}).get(label, label)


@cache
def field_names(attribute: str) -> frozenset[str]:
    """Names a model may give the attribute's field ("age", "Age group", "ethnicity"), as matcher words."""
    return frozenset(" ".join(words(k)) for k in [attribute, *_attribute(attribute).get("keys", [])])


# --- free text -> label -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """The label a text names for one attribute, or None and why not."""

    label: str | None
    reason: str


@cache
def _vocabulary(attribute: str) -> Vocabulary:
    """Phrase table of one attribute; a phrase listed twice with different meanings is a data error."""
    spec, parsing = _attribute(attribute), _taxonomies()["parsing"]
    phrases: dict[tuple[str, ...], tuple[str, ...] | None] = {}
    notes: dict[tuple[str, ...], str] = {}

    def add(phrase: str, candidates: tuple[str, ...] | None, note: str = "") -> None:
        key = words(phrase)
        if not key:
            raise ValueError(f"taxonomies.toml: empty {attribute} phrase {phrase!r}")
        if key in phrases and phrases[key] != candidates:
            raise ValueError(f"taxonomies.toml: {attribute} phrase {phrase!r} means both "
                             f"{phrases[key]} and {candidates}")
        phrases[key] = candidates
        if note:
            notes[key] = note

    for label in spec["labels"]:
        if attribute != "age_group":  # age labels are numbers, read by ages.find_ages
            add(label, (label,))
            add(display(attribute, label), (label,))
    for label, synonyms in spec.get("synonyms", {}).items():
        if label not in spec["labels"]:
            raise ValueError(f"taxonomies.toml: synonyms for unknown {attribute} label {label!r}")
        for phrase in synonyms:
            add(phrase, (label,))
    for phrase, candidates in spec.get("ambiguous", {}).items():
        bad = [c for c in candidates if c not in spec["labels"]]
        if bad:
            raise ValueError(f"taxonomies.toml: ambiguous {attribute} phrase {phrase!r} names unknown {bad}")
        add(phrase, tuple(candidates), f"{phrase!r} could mean {' or '.join(candidates)}")
    for phrase in spec.get("outside", {}).get("phrases", []):
        add(phrase, (), f"{phrase!r} is not one of the {attribute} labels ({', '.join(spec['labels'])})")
    for phrase in spec.get("ignore", {}).get("phrases", []):
        add(phrase, None)
    return Vocabulary(phrases, notes, frozenset(parsing["negations"]), frozenset(parsing["clause_breaks"]),
                      parsing["negation_window"])


def phrases() -> frozenset[str]:
    """Every phrase the taxonomy reads, over all attributes, as plain lower-case words ("east asian")."""
    return frozenset(" ".join(key) for attribute in ATTRIBUTES for key in _vocabulary(attribute).phrases)


def _interval_groups(low: int, high: int | None) -> tuple[str, ...]:
    bounds = _taxonomies()["age_group"]["lower_bounds"]
    uppers = [b - 1 for b in bounds[1:]] + [None]
    return tuple(label for label, lo, hi in zip(AGE_GROUPS, bounds, uppers, strict=True)
                 if (hi is None or low <= hi) and (high is None or high >= lo))


def _age_mention(text: Text, span: AgeSpan) -> Mention | None:
    spec = _taxonomies()["age_group"]
    written = text.text[span.start:span.end]
    if span.single:
        before, after = text.neighbours(span.start, span.end)
        if before in spec["number_after_ignore"] or after in spec["number_before_ignore"]:
            return None
    negated = text.negated(text.word_at(span.start))
    if span.low > spec["max_years"] or (span.high is not None and span.high < span.low):
        return Mention(written, (), negated, f"{written!r} is not a plausible age")
    groups = _interval_groups(span.low, span.high)
    note = "" if len(groups) == 1 else f"{written!r} spans the age groups {', '.join(groups)}"
    return Mention(written, groups, negated, note)


def mentions(attribute: str, text: str) -> list[Mention]:
    """Every place `text` names `attribute`, in text order: label phrases, and ages for age_group."""
    prepared = Text(text, _vocabulary(attribute))
    found = prepared.phrase_mentions()
    if attribute == "age_group":
        ages = (_age_mention(prepared, span) for span in find_ages(prepared.text))
        found += [m for m in ages if m is not None]
    return found


def decide(attribute: str, found: list[Mention]) -> Resolution:
    """One label only when the mentions agree on it; otherwise None with the reason.

    Conservative on purpose: any negated mention, any class outside the taxonomy
    and any two different labels make the answer unreadable, because guessing
    would turn a model's hedge into a confident wrong label.
    """
    if not found:
        return Resolution(None, f"no {attribute} label found")
    definite = list(dict.fromkeys(m.candidates[0] for m in found if len(m.candidates) == 1))
    several = f"names several {attribute} labels: {', '.join(definite)}"
    negated = [m.text for m in found if m.negated]
    if negated:
        return Resolution(None, f"negated mention: {', '.join(map(repr, negated))}"
                                + (f"; {several}" if len(definite) > 1 else ""))
    outside = next((m for m in found if not m.candidates), None)
    if outside is not None:
        return Resolution(None, outside.note)
    if len(definite) > 1:
        return Resolution(None, several)
    common = set(labels(attribute))
    for m in found:
        common &= set(m.candidates)
    if len(common) == 1:
        label = common.pop()
        return Resolution(label, f"read {label!r} from {', '.join(repr(m.text) for m in found)}")
    if definite:
        clash = next(m for m in found if definite[0] not in m.candidates)
        return Resolution(None, f"{definite[0]!r} contradicts {clash.note or repr(clash.text)}")
    if not common:
        return Resolution(None, f"the {attribute} mentions disagree: {', '.join(repr(m.text) for m in found)}")
    return Resolution(None, next(m.note for m in found if m.note))


def resolve_label(attribute: str, text: str | int | float) -> Resolution:
    """Like `normalize`, with the reason: which words gave the label, or why there is none."""
    _attribute(attribute)
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        return Resolution(None, f"expected text or a number, got {type(text).__name__}")
    if not isinstance(text, str):
        if attribute != "age_group":
            return Resolution(None, f"a number is not a {attribute} label")
        if not 0 <= text <= _taxonomies()["age_group"]["max_years"]:
            return Resolution(None, f"{text} is not a plausible age in years")
        group = age_group(text)
        return Resolution(group, f"{text} years is in {group}")
    if not text.strip():
        return Resolution(None, "empty text")
    return decide(attribute, mentions(attribute, text))


def normalize(attribute: str, text: str | int | float) -> str | None:
    """Canonical label named by free text ("joy", "Latino_Hispanic", "about 35", "70+") or None.

    None means the text names no label, several, a negated one, an age range that
    straddles groups, or a class we do not have; `resolve_label` says which.
    """
    return resolve_label(attribute, text).label


# --- other datasets' labels -> ours ---------------------------------------------------------------


@cache
def _mappings() -> dict:
    tables = _data("mappings.toml")
    for source, attributes in tables.items():
        for attribute, table in attributes.items():
            allowed = set(labels(attribute))
            for native, target in table["map"].items():
                targets = [target] if isinstance(target, str) else target
                if not set(targets) <= allowed:
                    raise ValueError(f"mappings.toml: {source}.{attribute} maps {native!r} to unknown {targets}")
            for code, native in table.get("codes", {}).items():
                if native not in table["map"]:
                    raise ValueError(f"mappings.toml: {source}.{attribute} code {code} names unmapped {native!r}")
    return tables


def sources() -> tuple[str, ...]:
    """Every label source with a mapping, as `dataset_attribute` ("utkface_race", "rafdb_emotion")."""
    return tuple(f"{s}_{a}" for s, attributes in _mappings().items() for a in attributes)


def _tables(source: str) -> list[tuple[str, dict]]:
    """(attribute, table) pairs named by `source`: "utkface" (all its attributes) or "utkface_race"."""
    tables = _mappings()
    if source in tables:
        return list(tables[source].items())
    for attribute in ATTRIBUTES:
        dataset = source.removesuffix(f"_{attribute}")
        if dataset != source and attribute in tables.get(dataset, {}):
            return [(attribute, tables[dataset][attribute])]
    raise ValueError(f"unknown label source {source!r}; use a dataset ({', '.join(tables)}) "
                     f"or one of {', '.join(sources())}")


def _key(label: str | int) -> str:
    return " ".join(words(str(label)))


def _native(source: str, label: str | int) -> tuple[str, dict, str] | None:
    """(attribute, table, native name) of a source label given by name or numeric code."""
    if isinstance(label, bool) or not isinstance(label, str | int):
        raise TypeError(f"a source label is a name or an integer code, got {type(label).__name__}")
    code = str(label).strip()
    found = []
    for attribute, table in _tables(source):
        names = {_key(n): n for n in table["map"]}
        if re.fullmatch(r"\d+", code) and code in table.get("codes", {}):
            found.append((attribute, table, table["codes"][code]))
        elif _key(label) in names:
            found.append((attribute, table, names[_key(label)]))
    if len(found) > 1:
        raise ValueError(f"{source} label {label!r} exists for several attributes "
                         f"({', '.join(f[0] for f in found)}); name one, e.g. {source}_{found[0][0]}")
    return found[0] if found else None


@lru_cache(maxsize=4096, typed=True)  # readers call this once per row of datasets with ~100k rows
def candidate_labels(source: str, label: str | int) -> tuple[str, ...]:
    """Our labels a source label can stand for: one when exact, several when coarser, none when unknown."""
    native = _native(source, label)
    if native is None:
        return ()
    target = native[1]["map"][native[2]]
    return (target,) if isinstance(target, str) else tuple(target)


def map_label(source: str, label: str | int) -> str | None:
    """Our label for a dataset's label (name or numeric code), or None.

    None when the source's class has no exact counterpart (UTKFace "Asian" is East or
    Southeast Asian; AffectNet "Uncertain" is no emotion) or the label is not one of
    the source's: mapping_note says what is lost, candidate_labels gives the set.
    `source` is a dataset ("rafdb", "utkface") or dataset_attribute ("utkface_race");
    a numeric code shared by two attributes of one dataset needs the latter.
    """
    found = candidate_labels(source, label)
    return found[0] if len(found) == 1 else None


def mapping_note(source: str) -> str:
    """What mapping `source` into our taxonomy loses (all of a dataset's attributes if given a dataset)."""
    return "\n".join(f"{t['title']}: {t['note']}" for _, t in _tables(source))


def comparable_labels(source: str, attribute: str | None = None) -> tuple[str, ...]:
    """Our labels the source expresses one-to-one: restrict accuracy comparisons to these.

    FER2013 and RAF-DB lack Contempt; UTKFace's race set reaches only White, Black and
    Indian; deepface's race set lacks the East/Southeast Asian split.
    """
    tables = [(a, t) for a, t in _tables(source) if attribute in (None, a)]
    if not tables:
        raise ValueError(f"{source} has no {attribute} labels")
    exact = {t for _, table in tables for t in table["map"].values() if isinstance(t, str)}
    order = [label for a, _ in tables for label in labels(a)]
    return tuple(label for label in order if label in exact)
