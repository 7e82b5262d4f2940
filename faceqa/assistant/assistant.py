"""The assistant: photos and a question in, an Answer out.

photos -> face engine (-> optional attribute engine, e.g. a VLM) -> reports
question + reports (+ conversation) -> router.route -> Plan (routed once)
Plan -> evidence.gather (identity similarities, expression reasoning) -> compose.Composer -> Answer
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from faceqa.images import load_image
from faceqa.schema import Answer, ImageReport

from .compose import Composer
from .conversation import Conversation
from .evidence import gather
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
        photos: list[tuple[np.ndarray | None, ImageReport]] = []
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
        self,
        images: Image | Sequence[Image] | None,
        question: str,
        conversation: Conversation | None = None,
        plan: Plan | None = None,
    ) -> Answer:
        """Answer `question` about `images` (or, when None, the photos already in `conversation`).

        The conversation, when given, is updated in place: its photos and the faces this
        answer is about, for the next question to refer back to. `plan`, when given, is the
        question already routed by `plan()` on the same reports and conversation (a server
        that first checks `plan.needs_identities`), so the question is routed once.
        """
        if not question or not question.strip():
            raise ValueError("the question is empty")
        photos = self.analyze(images) if images is not None else []
        rgbs: list[np.ndarray | None]
        if photos:
            reports = [report for _, report in photos]
            rgbs = [rgb for rgb, _ in photos]
            if conversation is not None:
                conversation.set_images(reports)
        elif conversation is not None and conversation.reports:
            reports, rgbs = list(conversation.reports), [None] * len(conversation.reports)
        else:
            raise ValueError("no photo: pass images, or a conversation that already has them")

        if plan is None:
            plan = route(question, reports, conversation, resolver=self.resolver, images=rgbs)
        faces = {FaceRef(i, f.id): f for i, report in enumerate(reports, start=1) for f in report.faces}
        evidence = gather(plan, faces, rgbs, lambda rgb, face: self.engine.embed(rgb, face))
        composer = Composer(faces, len(reports), race_note_said=bool(conversation and conversation.race_note_said))
        answer = composer.answer(plan, evidence)
        if conversation is not None:
            conversation.race_note_said = composer.race_note_said
            conversation.remember(question, answer.answer, plan)
        return answer

    def plan(self, question: str, reports: Sequence[ImageReport], conversation: Conversation | None = None) -> Plan:
        """Route `question` without answering it (see `answer(plan=...)`)."""
        return route(question, reports, conversation, resolver=self.resolver)
