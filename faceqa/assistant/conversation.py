"""Conversation memory: the photos of a chat and the faces last talked about, as plain JSON.

A server or app keeps one per chat (`conversation.model_dump_json()` /
`Conversation.model_validate_json(...)`). Identity embeddings are biometric templates:
they are dropped before a report is stored here, and recomputed from the photo when a
later question needs them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from faceqa.schema import ImageReport

from .plan import FaceRef, Plan


class Exchange(BaseModel):
    """One question of the chat and the answer it got."""

    question: str
    answer: str
    intent: str
    faces: list[FaceRef] = Field(default_factory=list)


class Conversation(BaseModel):
    reports: list[ImageReport] = Field(
        default_factory=list, description="The chat's photos, in order (photo 1, 2, ...)."
    )
    focus: list[FaceRef] = Field(default_factory=list, description="Faces the last answer was about.")
    pending: list[FaceRef] = Field(
        default_factory=list,
        description="Faces the last answer asked the user to choose among (it could not tell which one was meant).",
    )
    last_question: str = Field(
        "", description="The last question (part) answered, normalised: a bare follow-up ('and her?') still asks it."
    )
    last_intent: str | None = None
    last_attributes: list[str] = Field(default_factory=list)
    race_note_said: bool = Field(False, description="The race caveat was given once; it is not repeated.")
    turns: list[Exchange] = Field(default_factory=list, description="The questions asked so far and their answers.")

    def set_images(self, reports: list[ImageReport]) -> None:
        """Photos sent with a question. The same photos again (an app resending them) keep the thread;
        new photos start a new subject, since the faces talked about before are no longer there."""
        reports = [_without_embeddings(r) for r in reports]
        if reports == self.reports:
            return
        self.reports = reports
        self.focus = []
        self.pending = []
        self.last_question = ""
        self.last_intent = None
        self.last_attributes = []

    def remember(self, question: str, answer: str, plan: Plan) -> None:
        """Keep what a follow-up may refer to. An answer that found nobody keeps the previous focus; the
        question it asked still stands, so "the one on the right" after "which man?" gets that answer.
        A question the rules could not read, declined or not visible leaves the thread as it was.
        An ambiguous answer keeps the faces it asked the user to choose among (`pending`) until one is answered."""
        for part in plan.parts or (plan,):
            if part.targets and part.status == "ok":
                self.focus, self.pending = list(part.targets), []
            elif part.status == "ambiguous" and part.candidates:
                self.pending = list(part.candidates)
            if part.intent not in ("help", "refuse", "not_visible", "other_language") and part.status != "no_faces":
                self.last_intent, self.last_question = part.intent, part.asks or part.question
                self.last_attributes = list(part.attributes)
        targets = [r for part in plan.parts or (plan,) for r in part.targets]
        self.turns.append(Exchange(question=question, answer=answer, intent=plan.intent, faces=targets))


def _without_embeddings(report: ImageReport) -> ImageReport:
    if not any(f.embedding for f in report.faces):
        return report
    return report.model_copy(update={"faces": [f.model_copy(update={"embedding": None}) for f in report.faces]})
