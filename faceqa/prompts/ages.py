"""Read ages written with numbers as intervals of years.

"35", "about 35 years old", "30s", "25-32", "between 20 and 29", "70+", "more than 70",
"under 3" all become an interval [low, high] (high None when open above); turning an
interval into FairFace groups, and deciding what a straddling interval means, is
the taxonomy's job. Spelled-out numbers ("thirty-five") are not read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_START = r"(?<![\w.\-/\ufffd])"  # U+FFFD: a token cut mid-character ("1\ufffdosianre") is not a number
_N = r"(\d{1,3})"
_YEARS = r"(?:\s*(?:years?|yrs?)(?:\s+old)?)?"
# Each pattern turns its match into (low, high); the first pattern to claim a span wins.
_PATTERNS: list[tuple[re.Pattern, Callable[[re.Match], tuple[int, int | None]]]] = [
    # decades: "30s", "30's", "mid-30s"
    (re.compile(r"(?<![\w.])([1-9]0)\s*'?s(?!\w)"), lambda m: (int(m[1]), int(m[1]) + 9)),
    # open above: "over 70", "more than 70", "older than 69", "above the age of 70"
    (re.compile(r"\b(?:over|above|more\s+than|older\s+than|beyond|past)\s+(?:the\s+age\s+of\s+)?" + _N + r"(?!\d)"),
     lambda m: (int(m[1]) + 1, None)),
    (re.compile(r"\bat\s+least\s+" + _N + r"(?!\d)"), lambda m: (int(m[1]), None)),
    # open below: "under 3", "younger than 3", "at most 2"
    (re.compile(r"\b(?:under|below|less\s+than|younger\s+than)\s+(?:the\s+age\s+of\s+)?" + _N + r"(?!\d)"),
     lambda m: (0, int(m[1]) - 1)),
    (re.compile(r"\bat\s+most\s+" + _N + r"(?!\d)"), lambda m: (0, int(m[1]))),
    # "70 or older", "70 years and over", "2 or younger"
    (re.compile(_START + _N + _YEARS + r"\s+(?:or|and)\s+(?:older|over|above|more|up)\b"),
     lambda m: (int(m[1]), None)),
    (re.compile(_START + _N + _YEARS + r"\s+or\s+(?:younger|under|less)\b"), lambda m: (0, int(m[1]))),
    # "70+"
    (re.compile(_START + _N + r"\s*\+"), lambda m: (int(m[1]), None)),
    # ranges: "25-32", "20 to 29", "between 20 and 29"
    (re.compile(r"\bbetween\s+" + _N + _YEARS + r"\s*(?:and|-|to)\s*" + _N + r"(?!\d)"),
     lambda m: (int(m[1]), int(m[2]))),
    (re.compile(_START + _N + r"\s*(?:-|to)\s*" + _N + r"(?![\d+])"), lambda m: (int(m[1]), int(m[2]))),
    # a single number, also "35yo" and "2.5"; not a percentage, not "0.87", not glued to a broken character
    (re.compile(_START + r"(\d{1,3}(?:\.\d+)?)(?!(?!yo\b|yrs?\b|y/o|y\.o)[\w%\ufffd])(?!\.\d)(?!\s*(?:%|percent\b))"),
     lambda m: (math.floor(float(m[1])), math.floor(float(m[1])))),
]


@dataclass(frozen=True, slots=True)
class AgeSpan:
    start: int
    end: int
    low: int
    high: int | None
    single: bool

    def __str__(self) -> str:
        return f"[{self.low}, {'...' if self.high is None else self.high}]"


def find_ages(text: str) -> Iterator[AgeSpan]:
    """Every age expression in `text` (already lower-cased), in text order, without overlaps.

    A fraction below one ("0.87") is skipped: in model output it is a confidence, not an age.
    """
    taken: list[tuple[int, int]] = []
    spans: list[AgeSpan] = []
    for index, (pattern, interval) in enumerate(_PATTERNS):
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            single = index == len(_PATTERNS) - 1
            if single and match[1].startswith("0."):
                continue
            low, high = interval(match)
            taken.append((start, end))
            spans.append(AgeSpan(start, end, low, high, single))
    yield from sorted(spans, key=lambda s: s.start)
