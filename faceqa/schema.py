"""The face report: the one typed record that every part of faceqa shares.

The embedded engine and the VLM attribute engine fill it; the assistant reads it
to answer; the API, the chat app, the dataset builder and the evaluator pass it
on unchanged. Field names are a published contract (`faceqa analyze --json`):
add fields, never rename them.

Every attribute is *apparent*: what a model estimates from pixels, with a
confidence, not a fact about the person.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Point = tuple[float, float]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgeEstimate(_Record):
    years: float | None = Field(None, description="Apparent age in years, when the model estimates years.")
    group: str = Field(description="FairFace age group (prompts taxonomy).")
    score: float | None = Field(None, ge=0, le=1, description="Confidence of the group, when known.")


class LabelScore(_Record):
    """A categorical attribute: the chosen label, its confidence, and the full distribution if known."""

    label: str
    score: float = Field(ge=0, le=1)
    scores: dict[str, float] | None = None
    note: str | None = Field(None, description="Why this estimate deserves less trust than its score says, if known.")


class Pose(_Record):
    """Head pose in degrees: yaw > 0 turns to the image's right, pitch > 0 looks up, roll > 0 tilts clockwise."""

    yaw: float
    pitch: float
    roll: float


class Quality(_Record):
    face_size: int = Field(description="Shorter side of the face box in pixels.")
    sharpness: float = Field(description="Variance of the Laplacian on the face crop; higher is sharper.")
    note: str = Field(description="'ok', or why attributes of this face deserve less trust.")


class FaceReport(_Record):
    id: int = Field(ge=1, description="1-based, faces numbered left to right by box centre.")
    box: tuple[int, int, int, int] = Field(description="[x, y, width, height] in image pixels.")
    score: float = Field(ge=0, le=1, description="Detection confidence.")
    landmarks5: list[Point] = Field(description="Right eye, left eye, nose tip, right and left mouth corner.")
    landmarks68: list[Point] | None = Field(None, description="iBUG 68-point landmarks.")
    age: AgeEstimate | None = None
    gender: LabelScore | None = None
    emotion: LabelScore | None = None
    race: LabelScore | None = Field(None, description="Only from a VLM backend; the embedded engine has no race model.")
    action_units: dict[str, float] = Field(
        default_factory=dict, description="Geometric AU intensity estimates in [0, 1], not an AU detector."
    )
    pose: Pose | None = None
    quality: Quality | None = None
    embedding: list[float] | None = Field(None, description="Identity embedding, only when requested.")
    sources: dict[str, str] = Field(default_factory=dict, description="Attribute name -> model that produced it.")

    @property
    def center(self) -> Point:
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


class ImageInfo(_Record):
    path: str | None = None
    width: int
    height: int


class ImageReport(_Record):
    image: ImageInfo
    faces: list[FaceReport]


class ImageError(_Record):
    """One input that could not be analysed; batches carry it instead of failing whole."""

    path: str | None = None
    error: str


class FaceFacts(_Record):
    """The values an answer cites for one face (only the attributes the question was about)."""

    image: int = Field(ge=1, description="Photo number, 1-based, in the order given.")
    id: int = Field(ge=1, description="The face's id in that photo (engine numbering).")
    box: tuple[int, int, int, int]
    age: AgeEstimate | None = None
    gender: LabelScore | None = None
    emotion: LabelScore | None = None
    race: LabelScore | None = None
    action_units: dict[str, float] | None = None


class FacesResult(_Record):
    """Attributes of the faces meant (attribute, describe, find, reasoning answers)."""

    kind: Literal["faces"] = "faces"
    faces: list[FaceFacts]


class CountResult(_Record):
    kind: Literal["count"] = "count"
    count: int = Field(ge=0, description="Faces that fit the question's condition (all faces when there is none).")
    total: int = Field(ge=0, description="Faces in the photos counted.")
    condition: str = Field("", description="What was counted, e.g. 'appear female'; empty: everyone.")
    faces: list[FaceFacts] = Field(default_factory=list)


class Ranked(FaceFacts):
    score: float | None = Field(None, description="What the ranking is by: apparent years, or an emotion's score.")


class RankingResult(_Record):
    """Oldest / youngest / most of an emotion / the same age: the faces compared, best first."""

    kind: Literal["ranking"] = "ranking"
    comparison: Literal["oldest", "youngest", "most_emotion", "least_emotion", "same_age", "emotion"]
    emotion: str | None = None
    ranking: list[Ranked]


class IdentityPair(_Record):
    a: tuple[int, int] = Field(description="(photo, face id)")
    b: tuple[int, int]
    cosine: float
    threshold: float
    same: bool


class IdentityResult(_Record):
    kind: Literal["identity"] = "identity"
    pairs: list[IdentityPair]


class CandidatesResult(_Record):
    """The question could not be answered as asked (ambiguous, not found): the faces it could mean."""

    kind: Literal["candidates"] = "candidates"
    candidates: list[FaceFacts]


class DeclinedResult(_Record):
    """No face values on purpose: declined by the policy, not visible to the engine, not English, unreadable."""

    kind: Literal["declined"] = "declined"
    reason: Literal["policy", "not_visible", "other_language", "unreadable", "no_faces"]
    topic: str = Field("", description="The policy category or what cannot be seen, e.g. 'criminality', 'clothing'.")


class CompoundResult(_Record):
    kind: Literal["compound"] = "compound"
    parts: list[Answer] = Field(description="One answer per part of the question, in order.")


AnswerResult = Annotated[
    FacesResult | CountResult | RankingResult | IdentityResult | CandidatesResult | DeclinedResult | CompoundResult,
    Field(discriminator="kind"),
]


class Answer(_Record):
    """What the assistant says about a question, with everything it rests on.

    `answer` is the text to show: a plain first sentence, then any detail a reader needs.
    `reasoning` is the step-by-step detail behind it (the AU observations, interpretation and
    conclusion of an expression question), kept apart so a page can fold it away: it is
    never repeated inside `answer`. `faces` are the ids (engine numbering) the answer is
    about, so a UI can highlight them; `result` holds the typed values the text was composed
    from, one shape per kind of answer.
    """

    answer: str
    task: str = Field(description="Routed intent, e.g. 'attribute', 'count', 'compare', 'reasoning', 'describe'.")
    faces: list[int] = Field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = Field(default_factory=list)
    result: AnswerResult | None = None
    reasoning: str | None = None
    status: Literal["ok", "ambiguous", "not_found", "unsupported", "no_faces"] = "ok"

    @property
    def text(self) -> str:
        """Everything to print in one block: the answer, then the reasoning below it."""
        return f"{self.answer}\n\n{self.reasoning}" if self.reasoning else self.answer


CompoundResult.model_rebuild()
