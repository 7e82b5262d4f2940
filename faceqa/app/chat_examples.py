"""Example questions the chat page offers to click, chosen for the photos at hand.

A question is offered only when it fits the photo (a comparison needs two faces, "who is
smiling?" needs someone who looks happy) and the assistant's own router plans it without
ambiguity for these reports, so a click never lands on "I can't tell who you mean".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faceqa.assistant.router import route
from faceqa.schema import FaceReport, ImageReport

MAX_EXAMPLES = 4


@dataclass(frozen=True)
class Starter:
    """A question about one of the bundled example photos, for a conversation without a photo yet."""

    photo: str
    question: str
    label: str


STARTERS = (
    Starter("group.jpg", "Who is the oldest?", "Who is the oldest? (group photo)"),
    Starter("group.jpg", "Explain person 3's expression step by step", "Explain person 3's expression (group photo)"),
    Starter("astronaut.png", "How old does she look?", "How old does she look? (astronaut)"),
)


def _most_expressive(faces: Sequence[FaceReport]) -> FaceReport:
    """The face with the most telling expression to explain: the most confident emotion other than neutral,
    preferring anything over a smile (a smile explains itself); the first face when all look neutral."""

    def telling(face: FaceReport) -> tuple[bool, float]:
        emotion = face.emotion
        if emotion is None or emotion.label == "Neutral":
            return (False, -1.0)
        return (emotion.label != "Happiness", emotion.score)

    return max(faces, key=telling)


def _candidates(report: ImageReport, where: str) -> list[str]:
    faces = report.faces
    if not faces:
        return []
    if len(faces) == 1:
        return [
            f"How old does this person look{where}?",
            f"Explain this person's expression{where} step by step",
            f"Tell me about the person{where}",
        ]
    expressive = _most_expressive(faces)
    questions = [f"Who is the oldest{where}?", f"Explain person {expressive.id}'s expression{where} step by step"]
    if any(f.emotion and f.emotion.label == "Happiness" for f in faces):
        questions.append(f"Who is smiling{where}?")
    questions += [f"How old is the person on the left{where}?", f"How many people are there{where}?"]
    return questions


def examples_for(reports: Sequence[ImageReport], photo: int) -> list[str]:
    """Up to MAX_EXAMPLES questions about photo `photo` (1-based) that the router answers plainly."""
    where = f" in photo {photo}" if len(reports) > 1 else ""
    chosen = []
    for question in _candidates(reports[photo - 1], where):
        plan = route(question, reports)
        if plan.status == "ok" and {ref.image for ref in plan.targets} <= {photo}:
            chosen.append(question)
    return chosen[:MAX_EXAMPLES]
