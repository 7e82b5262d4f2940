"""The assistant's words, loaded once from `faceqa/prompts/data/vocabulary.toml`, and the one gated matcher.

Every module of the question path reads its words from here: numbers and ordinals, gendered
nouns, age words with the years they cover, pronouns, "which one" phrases, aggregate words
("average"), slang, emotion and race words (mapped to labels through the taxonomy), the topics
the embedded engine cannot see, and the English and foreign word lists the language check uses.
`Gated` is the single way a pattern is searched: only when the question has one of the
pattern's words (a set test is far cheaper than a regex search, and routing must cost a small
fraction of a millisecond).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from faceqa.prompts.taxonomy import normalize


def _load(name: str) -> dict:
    return tomllib.loads(resources.files("faceqa.prompts").joinpath(f"data/{name}").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Vocabulary:
    numbers: dict[str, int]
    ordinals: dict[str, int]
    gender: dict[str, str]  # noun -> "Male" / "Female"
    plural_gender: frozenset[str]
    ages: dict[str, tuple[float, float]]
    among: tuple[str, ...]  # phrases that choose within the faces last talked about
    comparatives: tuple[str, ...]  # without "than", these choose within them too ("who is older?")
    aggregate: dict[str, tuple[str, ...]]  # aggregate ("average") -> the words that ask for it
    answering: tuple[str, ...]  # phrases that open an answer to "which one do you mean?"
    pronouns: dict[str, str]
    slang: dict[str, str]
    emotions: dict[str, str]  # word -> emotion label
    races: dict[str, str]  # word -> race label
    not_visible: dict[str, tuple[str, ...]]  # topic -> words
    not_visible_names: dict[str, str]  # topic -> how an answer names it
    english: frozenset[str]
    foreign: frozenset[str]


@cache
def vocabulary() -> Vocabulary:
    data = _load("vocabulary.toml")
    gender = {w: label for label in ("Male", "Female") for w in data["gender"][label]}
    ages = {w: (float(low), float(high)) for w, (low, high) in data["ages"].items()}
    for table, words in (("gender", gender), ("ages", ages), ("pronouns", data["pronouns"])):
        if not words:
            raise ValueError(f"vocabulary.toml: [{table}] is empty")
    if missing := set(data["not_visible"]) ^ set(data["not_visible_names"]):
        raise ValueError(f"vocabulary.toml: [not_visible] and [not_visible_names] differ on {sorted(missing)}")
    return Vocabulary(
        numbers=dict(data["numbers"]),
        ordinals=dict(data["ordinals"]),
        gender=gender,
        plural_gender=frozenset(data["gender"]["plural"]),
        ages=ages,
        among=tuple(data["among"]["phrases"]),
        comparatives=tuple(data["among"]["comparatives"]),
        aggregate={name: tuple(words) for name, words in data["aggregate"].items()},
        answering=tuple(data["answering"]["phrases"]),
        pronouns=dict(data["pronouns"]),
        slang=dict(data["slang"]),
        emotions={w: label for w in data["emotions"]["words"] if (label := normalize("emotion", w))},
        races={w: label for w in data["races"]["words"] if (label := normalize("race", w))},
        not_visible={topic: tuple(words) for topic, words in data["not_visible"].items()},
        not_visible_names=dict(data["not_visible_names"]),
        english=frozenset(data["english"]["words"].split()),
        foreign=frozenset(data["foreign"]["words"].split()),
    )


def alternatives(words: Iterable[str]) -> str:
    """A regex alternation of `words`, longest first (so "east asian" wins over "asian")."""
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


def tokens(*phrases: str) -> frozenset[str]:
    return frozenset(w for phrase in phrases for w in phrase.split())


class Gated:
    """A regex that is only searched when the text has one of `gate`'s words."""

    __slots__ = ("gate", "rx")

    def __init__(self, pattern: str, gate: Iterable[str]):
        self.rx = re.compile(pattern)
        self.gate = frozenset(gate)

    def search(self, text: str, words: frozenset[str]) -> re.Match | None:
        return self.rx.search(text) if not words.isdisjoint(self.gate) else None


class Reading:
    """A normalised text being read: each phrase taken is blanked, so no word is read twice."""

    def __init__(self, text: str):
        self.text = text
        self.words = frozenset(text.split())

    def find(self, pattern: Gated) -> re.Match | None:
        return pattern.search(self.text, self.words)

    def take(self, pattern: Gated, every: bool = False) -> list[re.Match]:
        found: list[re.Match] = []
        if self.words.isdisjoint(pattern.gate):
            return found
        while match := pattern.rx.search(self.text):
            found.append(match)
            self.blank(match.start(), match.end())
            if not every:
                break
        return found

    def first(self, pattern: Gated) -> re.Match | None:
        """Take the first match of `pattern`, if any."""
        found = self.take(pattern)
        return found[0] if found else None

    def blank(self, start: int, end: int) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]
