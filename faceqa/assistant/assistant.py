"""The assistant: photos and a question in, an Answer out.

photos -> face engine (-> optional attribute engine, e.g. a VLM) -> reports
question + reports (+ conversation) -> router -> Plan
Plan -> identity similarities / expression reasoning as needed -> composed Answer
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from faceqa.images import load_image
from faceqa.prompts.cot import compose_cot
from faceqa.schema import Answer, ImageReport

from .compose import Composer, Evidence, Pair
from .conversation import Conversation
from .plan import FaceRef, Plan
from .resolver import ReferentResolver
from .router import route

if TYPE_CHECKING:
    from faceqa.faces.engine import FaceEngine

Image = np.ndarray | str | Path | bytes | ImageReport


@runtime_checkable
class AttributeEngine(Protocol):
    def fill(self, rgb: np.ndarray, report: ImageReport) -> ImageReport:
        """The report with attributes filled in or replaced (e.g. race from a VLM); ids and boxes unchanged."""
        ...


class Assistant:
    """Answers questions about the people in photos.

    `engine` detects and describes faces (the embedded FaceEngine by default, loaded on
    first use); `attributes`, when given, refines each report afterwards; `resolver`
    grounds descriptions the routing rules cannot read.
    """

    def __init__(
        self,
        engine: FaceEngine | None = None,
        attributes: AttributeEngine | None = None,
        resolver: ReferentResolver | None = None,
    ):
        self._engine = engine
        self.attributes = attributes
        self.resolver = resolver

    @property
    def engine(self) -> FaceEngine:
        if self._engine is None:
            from faceqa.faces.engine import FaceEngine

            self._engine = FaceEngine()
        return self._engine

    def analyze(self, images: Image | Sequence[Image]) -> list[tuple[np.ndarray | None, ImageReport]]:
        """Decode and analyse each photo (a BadImage error names the one that failed).

        Reports passed in are used as they are: the attribute engine needs pixels, so it only
        refines photos analysed here.
        """
        if isinstance(images, np.ndarray | str | Path | bytes | ImageReport):
            images = [images]
        photos = []
        for image in images:
            if isinstance(image, ImageReport):
                photos.append((None, image))
                continue
            rgb = image if isinstance(image, np.ndarray) else load_image(image)
            path = str(image) if isinstance(image, str | Path) else None
            report = self.engine.analyze(rgb, path=path)
            if self.attributes is not None:
                report = self.attributes.fill(rgb, report)
            photos.append((rgb, report))
        return photos

    def answer(
        self, images: Image | Sequence[Image] | None, question: str, conversation: Conversation | None = None
    ) -> Answer:
        """Answer `question` about `images` (or, when None, the photos already in `conversation`).

        The conversation, when given, is updated in place: its photos and the faces this
        answer is about, for the next question to refer back to.
        """
        if not question or not question.strip():
            raise ValueError("the question is empty")
        photos = self.analyze(images) if images is not None else []
        if photos:
            reports = [report for _, report in photos]
            rgbs = [rgb for rgb, _ in photos]
            if conversation is not None:
                conversation.set_images(reports)
        elif conversation is not None and conversation.reports:
            reports, rgbs = list(conversation.reports), [None] * len(conversation.reports)
        else:
            raise ValueError("no photo: pass images, or a conversation that already has them")

        plan = route(question, reports, conversation, resolver=self.resolver, images=rgbs)
        faces = {FaceRef(i, f.id): f for i, report in enumerate(reports, start=1) for f in report.faces}
        evidence = self._evidence(plan, faces, rgbs) if plan.status == "ok" else Evidence()
        answer = Composer(faces, len(reports)).answer(plan, evidence)
        if conversation is not None:
            conversation.remember(question, answer.answer, plan)
        return answer

    def _evidence(self, plan: Plan, faces: dict, rgbs: list[np.ndarray | None]) -> Evidence:
        evidence = Evidence()
        if plan.comparison == "same_person":
            embeddings = {}
            for ref in plan.targets:
                face, rgb = faces[ref], rgbs[ref.image - 1]
                if face.embedding is not None:
                    embeddings[ref] = face.embedding
                elif rgb is not None:
                    embeddings[ref] = self.engine.embed(rgb, face)
                else:
                    evidence.missing = (
                        "To compare identities I need the photos themselves (identity embeddings are not kept in "
                        "the conversation); please send the photos again with the question."
                    )
                    return evidence
            from faceqa.faces.identity import SAME_PERSON_COSINE, cosine

            evidence.pairs = [
                Pair(a, b, cosine(embeddings[a], embeddings[b]), SAME_PERSON_COSINE)
                for a, b in itertools.combinations(plan.targets, 2)
            ]
        if plan.intent == "reasoning":
            for ref in plan.targets:
                face = faces[ref]
                if face.emotion is not None:
                    geometric = "geometric" in face.sources.get("action_units", "")
                    scores = face.emotion.scores or {face.emotion.label: face.emotion.score}
                    evidence.cots[ref] = compose_cot(face.action_units, face.emotion.label, scores, geometric=geometric)
        return evidence
