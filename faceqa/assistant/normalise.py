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
from functools import cache, lru_cache
from importlib import resources

from rapidfuzz import fuzz, process

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
def _words() -> tuple[frozenset[str], tuple[str, ...]]:
    """Words never corrected, and the words a misspelling may be corrected to."""
    v = vocabulary()
    words = set(v.english) | set(v.numbers) | set(v.ordinals) | set(v.slang.values())
    for table in (v.gender, v.ages, v.pronouns, v.emotions, v.races):
        words.update(w for phrase in table for w in phrase.split())
    for phrases in v.not_visible.values():
        words.update(w for phrase in phrases for w in phrase.split())
    policy = tomllib.loads(resources.files("faceqa.prompts").joinpath("data/policy.toml").read_text("utf-8"))
    for category in policy.values():
        for pattern in category.get("triggers", ()):
            words.update(re.findall(r"[a-z]{3,}", pattern))
    words.update(_EXTRA.split())
    return frozenset(words), tuple(sorted(w for w in words if len(w) >= 3))


# Question words the patterns of the router use that are not in the lists of vocabulary.toml.
_EXTRA = """
how many old age gender emotion expression explain describe reasoning step oldest youngest eldest smiling person
people persons face faces left right middle center leftmost rightmost photo photos picture pictures image images
happiest saddest angriest compare same identical different number count which whose emotional feelings
everyone everybody someone anyone ethnicity ethnic racial race action units unit facial cues years year
"""


def known_words() -> frozenset[str]:
    """Every word the assistant knows (vocabulary, policy triggers, English filler)."""
    return _words()[0]


CUTOFF = 85  # "persn" -> "person" is 91, "agee" -> "age" 86; "group" -> "grownup" (83) is no typo


@lru_cache(maxsize=8192)
def _correct(word: str) -> str:
    known, targets = _words()
    if word in known or len(word) < 3 or not word.isalpha():
        return word
    best = process.extractOne(word, targets, scorer=fuzz.ratio, score_cutoff=CUTOFF)
    return best[0] if best else word


def normalise(question: str) -> str:
    """The question as every later step reads it (see the module docstring)."""
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
        elif _WORD.fullmatch(word):
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
