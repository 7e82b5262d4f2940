"""Canonical label sets, loaded once from `data/taxonomies.toml`.

Labels are data, not code: every component that names an age group, a gender,
a race or an emotion takes the string from here, so two parts of faceqa can
never disagree on spelling.
"""

from __future__ import annotations

import bisect
import tomllib
from functools import cache
from importlib import resources


@cache
def _taxonomies() -> dict:
    return tomllib.loads(resources.files(__package__).joinpath("data/taxonomies.toml").read_text())


def labels(attribute: str) -> tuple[str, ...]:
    """Canonical labels of `attribute` ("race", "gender", "age_group", "emotion")."""
    return tuple(_taxonomies()[attribute]["labels"])


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
