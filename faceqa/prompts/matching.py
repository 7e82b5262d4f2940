"""Find what a piece of free text says about one attribute: the label phrases it uses, negated or not.

Matching is on whole words (so "unhappy" never reads as "happy"), longest phrase
first (so "East Asian" wins over "Asian"), and a mention is *negated* when a
negation word sits a few words before it in the same clause ("does not look
angry"). The vocabulary is data (taxonomies.toml); this module only reads text.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Sentence and clause punctuation; a dot between digits ("2.5") is not one.
_CLAUSE_END = re.compile(r"[;:!?\n,()\[\]]|\.(?!\d)")
# Same-length substitutions, so offsets into the prepared text are offsets into the original.
_SAME_LENGTH = str.maketrans({"_": " ", "\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2014": "-", "\u2212": "-"})


def prepare(text: str) -> str:
    """Lower-case `text` and unify underscores, apostrophes and dashes, keeping every offset."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few non-ASCII letters lower-case to two characters
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return lowered.translate(_SAME_LENGTH)


def words(text: str) -> tuple[str, ...]:
    """The words of `text` as the matcher sees them: "Latino_Hispanic" and "latino/hispanic" agree."""
    return tuple(_WORD.findall(prepare(text)))


@dataclass(frozen=True, slots=True)
class Mention:
    """One place where the text names the attribute.

    `candidates` are the labels the phrase can mean: one for a plain label, several
    for an ambiguous phrase ("Asian", an age range that straddles two groups), none
    for a class the taxonomy does not have. `note` says why when there is not exactly one.
    """

    text: str
    candidates: tuple[str, ...]
    negated: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Phrases of one attribute (word tuples -> candidate labels, or None for phrases to skip)."""

    phrases: dict[tuple[str, ...], tuple[str, ...] | None]
    notes: dict[tuple[str, ...], str]
    negations: frozenset[str]
    clause_breaks: frozenset[str]
    window: int

    @property
    def longest(self) -> int:
        return max((len(p) for p in self.phrases), default=1)


class Text:
    """Prepared text: its words with offsets and clause numbers, for phrase lookup and negation."""

    def __init__(self, text: str, vocabulary: Vocabulary):
        self.text = prepare(text)
        self.vocabulary = vocabulary
        self.words: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.clauses: list[int] = []
        clause, previous_end = 0, 0
        for match in _WORD.finditer(self.text):
            word = match.group()
            # One character past the gap, so a dot before a digit ("2.5") is seen as a decimal point.
            gap = self.text[previous_end:match.start() + 1]
            if _CLAUSE_END.search(gap) or word in vocabulary.clause_breaks:
                clause += 1
            self.words.append(word)
            self.starts.append(match.start())
            self.ends.append(match.end())
            self.clauses.append(clause)
            previous_end = match.end()

    def word_at(self, offset: int) -> int:
        """Index of the first word starting at or after `offset`."""
        return bisect.bisect_left(self.starts, offset)

    def negated(self, index: int) -> bool:
        """Whether a negation word precedes word `index` within the window, in the same clause."""
        clause = self.clauses[index] if index < len(self.words) else (self.clauses[-1] if self.clauses else 0)
        for j in range(max(0, index - self.vocabulary.window), index):
            if self.clauses[j] != clause:
                continue
            word = self.words[j]
            if word in self.vocabulary.negations or word.endswith("n't"):
                return True
        return False

    def neighbours(self, start: int, end: int) -> tuple[str | None, str | None]:
        """The words just before and just after the span [start, end) in the same clause, if any."""
        first, after = self.word_at(start), self.word_at(end)
        before = self.words[first - 1] if first > 0 and self._same_clause(first - 1, first) else None
        nxt = self.words[after] if after < len(self.words) and self._same_clause(after - 1, after) else None
        return before, nxt

    def _same_clause(self, i: int, j: int) -> bool:
        if i < 0 or j >= len(self.words) or i >= len(self.words):
            return False
        return self.clauses[i] == self.clauses[j]

    def phrase_mentions(self) -> list[Mention]:
        """Every vocabulary phrase in the text, longest first at each position, without overlaps."""
        mentions, i, longest = [], 0, self.vocabulary.longest
        while i < len(self.words):
            for size in range(min(longest, len(self.words) - i), 0, -1):
                key = tuple(self.words[i:i + size])
                if key in self.vocabulary.phrases:
                    candidates = self.vocabulary.phrases[key]
                    if candidates is not None:
                        span = self.text[self.starts[i]:self.ends[i + size - 1]]
                        mentions.append(Mention(span, candidates, self.negated(i), self.vocabulary.notes.get(key, "")))
                    i += size
                    break
            else:
                i += 1
        return mentions
