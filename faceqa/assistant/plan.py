"""The router's output: what a question asks and which faces it is about, before any answer is written.

A `Plan` is routed once per question and carries everything the later steps need: the
evidence step reads `needs_identities` (the API computes identity embeddings only then),
the composer dispatches on `intent` (and `comparison`), and a VLM integration reads `vlm`:
the kind of question the rules cannot answer (not visible to the embedded engine, a
referent they cannot ground, an open question). A compound question ("how many people are
there, and who is the oldest?") is one plan whose `parts` are planned one by one.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

Intent = Literal[
    "attribute",  # one or more attributes of the faces meant
    "count",
    "compare",  # see Comparison
    "reasoning",  # expression, step by step
    "describe",  # everything about everyone meant
    "refuse",  # declined by the policy (faceqa/prompts/data/policy.toml)
    "not_visible",  # asks what the embedded engine cannot see (clothing, hair, background ...)
    "other_language",  # not English: the rules only read English
    "help",  # nothing the rules could read
    "compound",  # several questions: see `parts`
]
Comparison = Literal[
    "oldest", "youngest", "emotion", "most_emotion", "least_emotion", "same_person", "same_age", "find", "average"
]
Status = Literal["ok", "ambiguous", "not_found", "no_faces", "unsupported"]
VLMNeed = Literal["not_visible", "referent", "open_question"]
# The FaceReport fields an answer can be about, in the order answers read them.
ATTRIBUTE_FIELDS = ("age", "gender", "emotion", "race")


class FaceRef(NamedTuple):
    """One face of the chat: image (1-based, in the order given) and the engine's face id in it."""

    image: int
    face: int


class Plan(BaseModel):
    """A routed question. `targets` are the faces the answer is about; when `status` is not "ok",
    `candidates` are the faces the user could have meant (or everyone, when none matched) and
    `why` says why the question cannot be answered as asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    intent: Intent
    attributes: tuple[str, ...] = ()
    named: tuple[str, ...] = ()  # the attributes the question names ("race" only when race was asked)
    yes_no: bool = False  # a yes/no question: the answer starts with Yes or No
    comparison: Comparison | None = None
    emotion: str | None = None  # the one emotion a comparison or count is about (None when several are)
    # attribute -> the labels a question asks about ("is she smiling?"); any of them answers yes ("surprised or scared")
    asked: dict[str, tuple[str, ...]] = {}
    # "is she happy or sad?": the labels of `asked` are offered as a choice; the answer names the one that applies
    # (or neither), never Yes or No; "why is she happy or sad?" (reasoning): which of them, then why
    choice: bool = False
    # "is person 2 over 40?": the apparent-age range asked about (answered Yes or No; with `choice`, which side of it)
    ages: tuple[float, float] | None = None
    targets: tuple[FaceRef, ...] = ()
    candidates: tuple[FaceRef, ...] = ()
    status: Status = "ok"
    how: str = ""  # how the referent was read ("the leftmost face"), said with the answer
    roles: tuple[str, ...] = ()  # several faces named one by one: the words that named each target ("the oldest woman")
    why: str = ""  # why the question cannot be answered as asked (status is not "ok")
    condition: str = ""  # what a count or a search filters by ("appear female"); empty: everyone
    note: str = ""  # a caveat the answer must carry (a description the model disagrees with)
    referent: str = ""  # the referring phrase as understood
    unresolved: str = ""  # a description only a VLM could ground ("the boy holding a ball")
    vlm: VLMNeed | None = None  # why only a VLM could answer this; None when the rules can
    topic: str = ""  # refuse: the policy category; not_visible: what cannot be seen ("clothing")
    question: str = ""  # the question (or compound part) as normalised
    asks: str = ""  # a bare follow-up ("and her?" after "is he smiling?"): the earlier question it still asks
    parts: tuple[Plan, ...] = ()  # compound: one plan per part, in order

    @property
    def needs_identities(self) -> bool:
        """Whether answering needs identity embeddings (a same-person comparison of grounded faces)."""
        if self.parts:
            return any(p.needs_identities for p in self.parts)
        return self.comparison == "same_person" and self.status == "ok"

    @property
    def identity_faces(self) -> tuple[FaceRef, ...]:
        """The faces whose identity embeddings the answer compares."""
        if self.parts:
            return tuple(dict.fromkeys(r for p in self.parts for r in p.identity_faces))
        return self.targets if self.needs_identities else ()

    @property
    def last(self) -> Plan:
        """The plan a follow-up refers back to: the last part of a compound question."""
        return self.parts[-1] if self.parts else self
