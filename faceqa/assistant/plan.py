"""The router's output: what a question asks and which faces it is about, before any answer is written."""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

Intent = Literal["attribute", "count", "compare", "reasoning", "describe", "help"]
Comparison = Literal["oldest", "youngest", "emotion", "most_emotion", "same_person", "find"]
Status = Literal["ok", "ambiguous", "not_found", "no_faces", "unsupported"]
ATTRIBUTES = ("age", "gender", "emotion", "race")


class FaceRef(NamedTuple):
    """One face of the chat: image (1-based, in the order given) and the engine's face id in it."""

    image: int
    face: int


class Plan(BaseModel):
    """A routed question. `targets` are the faces the answer is about; when `status` is not "ok",
    `candidates` are the faces the user could have meant (or everyone, when none matched) and
    `reason` says why the question cannot be answered as asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    intent: Intent
    attributes: tuple[str, ...] = ()
    comparison: Comparison | None = None
    emotion: str | None = None  # the emotion a comparison or count is about
    asked: dict[str, str] = {}  # attribute -> label of a yes/no question ("is she smiling?")
    targets: tuple[FaceRef, ...] = ()
    candidates: tuple[FaceRef, ...] = ()
    status: Status = "ok"
    reason: str = ""  # how the referent was read ("the leftmost face"), or why it could not be
    note: str = ""  # a caveat the answer must carry (a description the model disagrees with)
    referent: str = ""  # the referring phrase as understood
    unresolved: str = ""  # a description only a VLM resolver could ground ("the boy holding a ball")
