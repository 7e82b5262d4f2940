"""The assistant with a served VLM: each kind of question goes where it is best answered.

- attributes: the face crops, through the attribute engine (`faceqa.vlm.attributes`), as before;
- expression reasoning: the VLM is asked for the Exp-CoT it was trained on, on the same face
  crop (`faceqa.crops`), and its answer is shown *checked* against the engine's measured cues
  and emotion estimate (`faceqa.vlm.cot_check`), beside the engine's own reasoning;
- referring phrases the rules cannot ground ("the boy holding a ball"): set-of-marks — the
  engine's numbered boxes drawn on the photo (`faceqa.vlm.marks`), the model names a number;
  a number that is not on the photo is rejected (`MarksResolver`, the `ReferentResolver` hook);
- open questions about visible things (glasses, clothing, scene, "describe the photo"): the
  VLM answers on the marked photo with the per-face report as context, and the answer says it
  is the model's description, not a measurement.

A compound question is answered part by part, each part where it is best answered (the router
splits it once, for both assistants). The refusal policy runs first (in the router), so a declined
question never reaches the model.
A VLM that times out or fails never fails the answer: the embedded answer is given with a note.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from faceqa.assistant import Assistant, Conversation
from faceqa.assistant.compose import joined, shown
from faceqa.assistant.plan import FaceRef, Plan
from faceqa.assistant.router import route
from faceqa.prompts import templates
from faceqa.schema import Answer, CompoundResult, FaceReport, ImageReport

from .attributes import VLMAttributes, VLMAttributesConfig
from .base import GenerationParams, Message, VLMBackend
from .cot_check import check_cot
from .marks import marked_photo, open_prompt, read_mark

if TYPE_CHECKING:
    from faceqa.faces.engine import FaceEngine

log = logging.getLogger(__name__)

OPEN_PREFIX = "The VLM's description (a model looking at the photo, not a measurement): "
COT_HEADER = "The VLM's step-by-step explanation of person {id}, checked against the measured cues:"
FALLBACK = "(The VLM did not answer: {reason}. This is the embedded engine's answer.)"
VLM_KINDS = ("not_visible", "open_question")


class MarksResolver:
    """`ReferentResolver` by set-of-marks: the photo with numbered boxes, "which number is <description>?"."""

    def __init__(self, backend: VLMBackend, style: str = "chat", max_tokens: int = 8):
        self.backend, self.style, self.max_tokens = backend, style, max_tokens
        self.last_error: str | None = None

    def find_faces(self, description: str, question: str, rgb: np.ndarray, report: ImageReport) -> list[int] | None:
        prompt = templates.question("marks", self.style, referent=description)
        try:
            text = self.backend.generate([marked_photo(rgb, report)], _messages(prompt, self.style),
                                         GenerationParams(max_tokens=self.max_tokens))
        except Exception as error:  # a failing model must not fail the question: the rules' answer stands
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning("set-of-marks resolver failed: %s", self.last_error)
            return None
        reading = read_mark(text, {face.id for face in report.faces})
        if reading.id is None:
            log.info("set-of-marks answer rejected: %s", reading.reason)
            return None
        return [reading.id]


def _messages(prompt: str, style: str) -> list[Message]:
    messages: list[Message] = []
    if style == "chat":
        messages.append({"role": "system", "content": templates.system_prompt()})
    messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]})
    return messages


class VLMAssistant(Assistant):
    """An `Assistant` whose attributes, hard referents, expression reasoning and open questions use a VLM."""

    def __init__(self, backend: VLMBackend, *, style: str = "chat", attributes: VLMAttributes | None = None,
                 engine: FaceEngine | None = None, reasoning_tokens: int = 400, open_tokens: int = 200,
                 crop: VLMAttributesConfig | None = None):
        """`attributes`, when given, reads the per-face attributes from crops (its crop is used for reasoning too);
        without it the embedded engine's attributes stand and only the other kinds go to the VLM. `crop` names the
        face crop for reasoning when `attributes` is not given (default: faceqa.crops')."""
        self.vlm, self.style = backend, style
        config = attributes.config if attributes is not None else crop or VLMAttributesConfig(style=style)  # type: ignore[arg-type]
        self.crop = (config.margin, config.crop_size)
        self.reasoning_tokens, self.open_tokens = reasoning_tokens, open_tokens
        super().__init__(engine, attributes=attributes, resolver=MarksResolver(backend, style))
        self._local = threading.local()

    def analyze(self, images):
        analysed = getattr(self._local, "analysed", None)
        if analysed is not None and analysed[0] is images:
            return analysed[1]
        return super().analyze(images)

    def plan(self, question: str, reports: Sequence[ImageReport], conversation: Conversation | None = None,
             pixels: Sequence[np.ndarray | None] | None = None) -> Plan:
        """Route `question`; with the photos' `pixels`, a referent the rules cannot read is asked of the VLM."""
        return route(question, reports, conversation, resolver=self.resolver, images=pixels)

    def answer(self, images, question: str, conversation: Conversation | None = None,
               plan: Plan | None = None, pixels: Sequence[np.ndarray | None] | None = None) -> Answer:
        """As `Assistant.answer`; `pixels` are the photos of `images` when those are finished reports (a server)."""
        if not question or not question.strip():
            raise ValueError("the question is empty")
        photos = super().analyze(images) if images is not None else []
        if pixels is not None and photos:
            photos = [(rgb, report) for rgb, (_, report) in zip(pixels, photos, strict=True)]
        if photos:
            reports, rgbs = [r for _, r in photos], [rgb for rgb, _ in photos]
        elif conversation is not None and conversation.reports:
            reports = list(conversation.reports)
            rgbs = list(pixels) if pixels is not None and len(pixels) == len(reports) else [None] * len(reports)
        else:
            raise ValueError("no photo: pass images, or a conversation that already has them")
        if plan is None:
            plan = route(question, reports, conversation, resolver=self.resolver, images=rgbs)
        self._local.analysed = (images, photos)  # the base answer analyses the same photos: no second pass
        try:
            embedded = super().answer(images, question, conversation, plan=plan)
        finally:
            self._local.analysed = None
        if plan.parts and isinstance(embedded.result, CompoundResult):
            return self._compound(plan, embedded, reports, rgbs)
        return self._one(plan, embedded, question, reports, rgbs)

    def _one(self, plan: Plan, embedded: Answer, question: str, reports: Sequence[ImageReport],
             rgbs: Sequence[np.ndarray | None]) -> Answer:
        """One question (or one part of a compound question) where it is best answered."""
        try:
            if plan.intent == "reasoning" and plan.status == "ok":
                return self._reasoning(plan, embedded, reports, rgbs)
            if plan.vlm in VLM_KINDS and plan.intent != "refuse":
                return self._open(question, embedded, reports, rgbs)
        except Exception as error:  # timeouts, refused connections, bad replies: the embedded answer, with a note
            log.warning("VLM answer failed: %s: %s", type(error).__name__, error)
            return _with_note(embedded, FALLBACK.format(reason=f"{type(error).__name__}: {error}"))
        return embedded

    def _compound(self, plan: Plan, embedded: Answer, reports: Sequence[ImageReport],
                  rgbs: Sequence[np.ndarray | None]) -> Answer:
        """Each part where it is best answered, as the embedded assistant split them: "how old is person 1 and why
        does person 2 look surprised?" is the engine's age and the VLM's checked reasoning about person 2's crop; the
        VLM sees the part's own words, never the whole question. A part the VLM fails keeps its embedded answer."""
        assert isinstance(embedded.result, CompoundResult)
        parts = [self._one(part, answer, part.question, reports, rgbs)
                 for part, answer in zip(plan.parts, embedded.result.parts, strict=True)]
        if parts == embedded.result.parts:
            return embedded
        text, reasoning = joined(parts)
        faces, boxes = shown(parts)  # an open part the VLM answered adds the faces it is about
        return embedded.model_copy(update={"answer": text, "reasoning": reasoning, "faces": faces, "boxes": boxes,
                                           "result": CompoundResult(parts=parts)})

    def _reasoning(self, plan: Plan, embedded: Answer, reports: Sequence[ImageReport],
                   rgbs: Sequence[np.ndarray | None]) -> Answer:
        from faceqa.crops import face_crop

        sections = []
        for ref in plan.targets:
            rgb, face = rgbs[ref.image - 1], _face(reports, ref)
            if rgb is None or face is None:
                return _with_note(embedded, FALLBACK.format(reason="the photo is no longer in memory"))
            crop = face_crop(rgb, face.box, *self.crop)
            text = self.vlm.generate([crop], _messages(templates.question("reasoning", self.style), self.style),
                                     GenerationParams(max_tokens=self.reasoning_tokens))
            checked = check_cot(text, face.action_units, face.emotion)
            sections.append(f"{COT_HEADER.format(id=face.id)}\n\n{text.strip()}\n\n{checked.note()}")
        reasoning = "\n\n".join(filter(None, [embedded.reasoning, *sections]))
        return embedded.model_copy(update={"reasoning": reasoning})

    def _open(self, question: str, embedded: Answer, reports: Sequence[ImageReport],
              rgbs: Sequence[np.ndarray | None]) -> Answer:
        if not reports or rgbs[0] is None:
            return _with_note(embedded, FALLBACK.format(reason="the photo is no longer in memory"))
        texts = []
        for index, (report, rgb) in enumerate(zip(reports, rgbs, strict=True), start=1):
            if rgb is None:
                continue
            prompt = open_prompt(question, report)
            text = self.vlm.generate([marked_photo(rgb, report)], _messages(prompt, self.style),
                                     GenerationParams(max_tokens=self.open_tokens)).strip()
            texts.append(text if len(reports) == 1 else f"Photo {index}: {text}")
        faces = list(reports[0].faces) if len(reports) == 1 else []
        return Answer(answer=OPEN_PREFIX + "\n".join(texts), task="open_question",
                      faces=[f.id for f in faces], boxes=[f.box for f in faces], status="ok")


def _face(reports: Sequence[ImageReport], ref: FaceRef) -> FaceReport | None:
    return next((f for f in reports[ref.image - 1].faces if f.id == ref.face), None)


def _with_note(answer: Answer, note: str) -> Answer:
    return answer.model_copy(update={"answer": f"{answer.answer}\n\n{note}"})
