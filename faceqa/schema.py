"""The face report: the one typed record that every part of faceqa shares.

The embedded engine and the VLM attribute engine fill it; the assistant reads it
to answer; the API, the chat app, the dataset builder and the evaluator pass it
on unchanged. Field names are a published contract (`faceqa analyze --json`):
add fields, never rename them.

Every attribute is *apparent*: what a model estimates from pixels, with a
confidence, not a fact about the person.
"""

from __future__ import annotations

from typing import Literal

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


class Answer(_Record):
    """What the assistant says about a question, with everything it rests on.

    `faces` are the ids (engine numbering) the answer is about, so a UI can highlight
    them; `attributes` holds the structured values the text was composed from.
    """

    answer: str
    task: str = Field(description="Routed intent, e.g. 'attribute', 'count', 'compare', 'reasoning', 'describe'.")
    faces: list[int] = Field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = Field(default_factory=list)
    attributes: dict = Field(default_factory=dict)
    reasoning: str | None = None
    status: Literal["ok", "ambiguous", "not_found", "unsupported", "no_faces"] = "ok"
