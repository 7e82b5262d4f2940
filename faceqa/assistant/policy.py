"""What the assistant declines: identity, criminality, trustworthiness, intelligence, attractiveness,
sexual orientation, religion, politics, health, origin and wealth (faceqa/prompts/data/policy.toml).

`check` runs on every normalised question (and every part of a compound one) before it is read
for anything else, so a declined question never reaches the attribute rules and never gets an
attribute list. The triggers are data and deliberately broad: an ambiguous phrasing is declined.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Refusal:
    category: str
    reply: str


@dataclass(frozen=True)
class _Category:
    name: str
    triggers: tuple[re.Pattern, ...]
    reply: str
    names: tuple[re.Pattern, ...] = ()


@cache
def categories() -> tuple[_Category, ...]:
    data = tomllib.loads(resources.files("faceqa.prompts").joinpath("data/policy.toml").read_text("utf-8"))
    offer = data.pop("offer")["text"]
    found = []
    for name, spec in data.items():
        if not spec.get("triggers") or "{offer}" not in spec.get("reply", ""):
            raise ValueError(f"policy.toml: [{name}] needs triggers and a reply with {{offer}}")
        triggers = tuple(re.compile(t) for t in spec["triggers"])
        names = tuple(re.compile(n) for n in spec.get("names", ()))
        found.append(_Category(name, triggers, " ".join(spec["reply"].split()).replace("{offer}", offer), names))
    return tuple(found)


def check(text: str) -> Refusal | None:
    """The refusal for a normalised question, or None when it may be answered."""
    for category in categories():
        if any(rx.search(text) for rx in category.triggers):
            return Refusal(category.name, category.reply)
    return None


def check_names(text: str, is_name: Callable[[list[str]], bool]) -> Refusal | None:
    """The refusal for a question naming someone ("is this tom hanks?", "who is obama?"): a `names` pattern
    whose name is made only of words the assistant does not know. Read on the text before typo correction,
    which would turn a name into a word ("hanks" -> "hands")."""
    for category in categories():
        for rx in category.names:
            if (m := rx.search(text)) is not None and is_name(m.group("name").split()):
                return Refusal(category.name, category.reply)
    return None
