"""A question's text, normalised once: every later step reads this string and nothing else.

Lower case, plain quotes, contractions spelt out, slang replaced ("ppl" -> "people", from
vocabulary.toml), misspelt words corrected to the nearest vocabulary word with rapidfuzz
("agee" -> "age", "persn" -> "person"), no punctuation but sentence breaks (" ; ") and commas (" , "), which
`compound.split` reads and removes, number words as digits ("person
three" -> "person 3"). A word is only corrected when it is not a known word and the match
is close (a rapidfuzz ratio of 85 or more; words of 3+ letters), so a word we simply do not know
stays as it is.

`english` tells whether a question is in English at all: the rules only read English, and a
question in another language gets one sentence saying so instead of a misreading.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib import resources

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from faceqa.prompts.taxonomy import phrases as taxonomy_phrases

from .vocabulary import vocabulary

_QUOTES = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "-": " ", "\u2013": " ", "\u2014": " ", "_": " "}
)
_CONTRACTIONS = (
    (re.compile(r"\b(who|what|she|he|it|that|there|where|how|which)'s\b"), r"\1 is"),
    (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'s?\b"), ""),  # possessives: "the man's age" -> "the man age"
)
_NOT_WORDS = re.compile(r"[^a-z0-9#;, ]+")
_BREAKS = re.compile(r"[?!;]+|\.(?=\s|$)")  # sentence ends: kept as " ; " for compound.split
_WORD = re.compile(r"[a-z]+")
_LETTERS = re.compile(r"[^\W\d_]+")
# Prompts written for a VLM end with an answer format ("... Answer with one of: Male, Female."); the options
# it lists are not what is asked about, so the format is dropped.
_ANSWER_FORMAT = re.compile(
    r"(?:^|(?<=[.?!:]))\s*(?:please\s+)?(?:answer|respond|reply)\s+(?:with|using|in)\b.*$", re.S
)


@cache
def known_words() -> frozenset[str]:
    """Every word the assistant knows: its own (`vocabulary_words`) and the policy's trigger words."""
    return vocabulary_words() | policy_words()


@cache
def vocabulary_words() -> frozenset[str]:
    """The words the assistant reads: its vocabulary, the router's pattern words, the taxonomy's label words
    and common English."""
    v = vocabulary()
    words = set(v.english) | set(v.numbers) | set(v.ordinals) | set(v.slang.values()) | set(_EXTRA.split())
    tables: list[Iterable[str]] = [v.gender, v.ages, v.pronouns, v.emotions, v.races, v.among, v.comparatives,
                                   v.answering, *v.aggregate.values()]
    for table in tables:
        words.update(w for phrase in table for w in phrase.split())
    for phrases in v.not_visible.values():
        words.update(w for phrase in phrases for w in phrase.split())
    words.update(w for phrase in taxonomy_phrases() for w in phrase.split())
    return frozenset(words)


def is_name(words: list[str]) -> bool:
    """Whether words read as someone's name: none of them a word the assistant reads, and not all of them
    misspellings of one ("tom hanks", "obama"; not "smilling")."""
    vocabulary = vocabulary_words()
    return all(w not in vocabulary for w in words) and any(_correct(w) == w for w in words)


@cache
def policy_words() -> frozenset[str]:
    """The words of the policy's triggers ("recogni[sz]e" gives recognise and recognize)."""
    policy = tomllib.loads(resources.files("faceqa.prompts").joinpath("data/policy.toml").read_text("utf-8"))
    words: set[str] = set()
    for category in policy.values():
        for pattern in category.get("triggers", ()):
            for variant in (re.sub(r"\[([a-z])[a-z]*\]", r"\1", pattern), re.sub(r"\[[a-z]*([a-z])\]", r"\1", pattern)):
                words.update(re.findall(r"[a-z]{3,}", variant))
    return frozenset(words)


@cache
def _targets() -> tuple[frozenset[str], tuple[str, ...]]:
    """Words never corrected, and the words a misspelling may be corrected to (policy words are among them,
    so "crimnal" is still declined)."""
    words = known_words()
    return words, tuple(sorted(w for w in words if len(w) >= 3))


# Question words the patterns of the router use that are not in the lists of vocabulary.toml.
_EXTRA = """
how many old age gender emotion expression explain describe reasoning step oldest youngest eldest smiling person
people persons face faces left right middle center leftmost rightmost photo photos picture pictures image images
happiest saddest angriest compare same identical different number count which whose emotional feelings
everyone everybody someone anyone ethnicity ethnic racial race action units unit facial cues years year
makes make made shows showing seems seeming appears appearing looks looking feels
teens twenties thirties forties fifties sixties seventies eighties nineties early late mid
"""
_SUFFIXES = ("s", "es", "ed", "ing", "ly", "er", "est")
CUTOFF = 85  # fuzz.ratio: "persn" -> "person" is 91, "agee" -> "age" 86; "group" -> "grownup" (83) is no typo
OSA_CUTOFF = 0.79  # one swap or edit in 5+ letters ("rigth" -> "right")


@lru_cache(maxsize=8192)
def _correct(word: str) -> str:
    known, targets = _targets()
    if word in known or len(word) < 3 or not word.isalpha():
        return word
    if any(word.endswith(s) and word[: -len(s)] in known for s in _SUFFIXES):
        return word  # an inflection of a known word ("makes", "smiles"): no typo
    best = process.extractOne(word, targets, scorer=fuzz.ratio, score_cutoff=CUTOFF)
    if best is None and len(word) >= 5:
        best = process.extractOne(word, targets, scorer=OSA.normalized_similarity, score_cutoff=OSA_CUTOFF)
    return best[0] if best else word


def normalize_question(question: str, correct: bool = True) -> str:
    """The question as every later step reads it (see the module docstring); `correct=False` leaves
    misspellings as they are (for reading names)."""
    v = vocabulary()
    q = _ANSWER_FORMAT.sub("", question.lower().translate(_QUOTES))
    if "'" in q:
        for rx, replacement in _CONTRACTIONS:
            q = rx.sub(replacement, q)
    q = _BREAKS.sub(" ; ", q.replace("centre", "center")).replace(",", " , ")
    q = _NOT_WORDS.sub(" ", q)
    words = []
    for word in q.split():
        word = v.slang.get(word, word)
        if word in v.numbers and word != "one":
            word = str(v.numbers[word])
        elif correct and _WORD.fullmatch(word):
            word = _correct(word)
        words.append(word)
    return " ".join(words)


def english(question: str) -> bool:
    """False when the question is plainly in another language: mostly non-Latin letters, or more
    words of the foreign list (vocabulary.toml) than known English words."""
    letters = _LETTERS.findall(question.lower())
    if not letters:
        return True
    text = "".join(letters)
    latin = sum(c.isascii() or "\u00c0" <= c <= "\u024f" for c in text)
    if latin < len(text) / 2:
        return False
    known = known_words()
    foreign = vocabulary().foreign - known
    n_foreign = sum(w in foreign for w in letters)
    n_english = sum(w in known for w in letters)
    return not (n_foreign >= 2 and n_foreign > n_english) and not (n_foreign >= 1 and n_english == 0)
