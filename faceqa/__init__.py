"""faceqa: ask questions about the people in a photo.

A thin facade over the components, for the three things most callers want::

    import faceqa
    faceqa.analyze("group.jpg")                      # ImageReport: every face, numbered left to right
    faceqa.ask("group.jpg", "who is the oldest?")    # Answer: text, the faces it is about, the values behind it
    faceqa.verify("obama.jpg", "obama2.jpg")         # Verification: same person?, similarity, threshold

Models load once, on first use, into one shared offline engine. For more control use
`faceqa.faces.engine.FaceEngine` and `faceqa.assistant.Assistant` directly.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    import numpy as np

    from faceqa.assistant import Assistant, Conversation
    from faceqa.schema import Answer, ImageReport

    Image = np.ndarray | str | Path | bytes

# onnxruntime 1.30's telemetry writes an events database under ~/.cache/Microsoft and a
# /tmp/mat-debug-PID.log per process, and crashes the process while loading when the
# command line is long (~40 KB). It reads this variable when it is loaded; every faceqa
# module (CLI, API workers, Streamlit's script runner, `python -m faceqa.x`) imports this
# package first, so setting it here, before any faceqa module can import onnxruntime,
# covers them all (and child processes inherit it).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"


class Verification(BaseModel):
    same_person: bool
    similarity: float
    threshold: float


@cache
def _assistant() -> Assistant:
    from faceqa.assistant import Assistant
    from faceqa.faces.engine import FaceEngine

    return Assistant(FaceEngine())


def analyze(image: Image, embeddings: bool = False) -> ImageReport:
    """Every face of one photo (path, encoded bytes or RGB array) with its apparent attributes."""
    return _assistant().engine.analyze(image, embeddings=embeddings)


def ask(images: Image | list[Image], question: str, conversation: Conversation | None = None) -> Answer:
    """Answer a question about the people in one or more photos; pass a Conversation to ask follow-ups."""
    return _assistant().answer(images, question, conversation)


def verify(image_a: Image, image_b: Image) -> Verification:
    """Whether the largest face of each photo appears to be the same person (an estimate, not proof)."""
    from faceqa.faces.identity import SAME_PERSON_COSINE, cosine, same_person

    embeddings: list[list[float]] = []
    for image in (image_a, image_b):
        report = analyze(image, embeddings=True)
        if not report.faces:
            raise ValueError(f"no face found in {report.image.path or 'the image'}")
        embedding = max(report.faces, key=lambda face: face.area).embedding
        assert embedding is not None  # analyze(embeddings=True) fills it for every face
        embeddings.append(embedding)
    similarity = cosine(embeddings[0], embeddings[1])
    return Verification(same_person=same_person(similarity), similarity=round(similarity, 4),
                        threshold=SAME_PERSON_COSINE)
