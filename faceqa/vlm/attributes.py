"""The VLM attribute engine: per-face race, gender, age group and emotion from a vision-language model.

It refines the reports of the embedded face engine (boxes and ids unchanged), so the
assistant answers the same way whichever engine filled the attributes, and race
becomes available. Each face is asked about on the crop training used (`faceqa.crops`: the
model sees one person, as in FairFace-style training data), with the questions from `faceqa.prompts`
and the shared parser; `mode="whole_image"` instead asks about "the second person from
the left" on the full photo, for what a crop cannot show. `ask()` answers any prompts
task (count, describe, ...) about the whole image.

The score of a label is the model's own probability of answering it (raw log-
probabilities, before the choice constraint), uncalibrated; with free-text answers it
is the probability of that exact wording, a lower bound on the label's. An answer
that cannot be read as a label leaves the attribute None and is reported, never guessed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from faceqa import crops
from faceqa.prompts import templates
from faceqa.prompts.parser import parse_answer
from faceqa.prompts.taxonomy import ATTRIBUTES
from faceqa.schema import AgeEstimate, FaceReport, ImageReport, LabelScore

from .base import GenerationParams, Message, VLMBackend, VLMError, VLMRequest
from .recipe import Recipe, crop_of, jpeg_quality_of

log = logging.getLogger(__name__)

FIELDS = {"race": "race", "gender": "gender", "age_group": "age", "emotion": "emotion"}  # FaceReport field


@dataclass(frozen=True)
class VLMAttributesConfig:
    """How faces are put to the model.

    `style` picks the prompt wording: "chat" for chat models, "paligemma" for PaliGemma's
    task prefixes. `structured` constrains answers to the taxonomy labels (vLLM's choice
    output; also TransformersBackend); turn it off for servers without structured output.
    """

    attributes: tuple[str, ...] = ATTRIBUTES
    mode: Literal["crops", "whole_image"] = "crops"
    style: Literal["chat", "paligemma"] = "chat"
    structured: bool = True
    margin: float = crops.MARGIN  # the crop training used (faceqa.crops), recorded with an adapter
    crop_size: int | None = crops.SIZE
    max_tokens: int = 24
    source: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.attributes) - set(ATTRIBUTES)
        if unknown or not self.attributes:
            raise ValueError(f"attributes must be among {', '.join(ATTRIBUTES)}, got {self.attributes}")
        if self.mode not in ("crops", "whole_image"):
            raise ValueError(f"mode must be 'crops' or 'whole_image', got {self.mode!r}")
        if self.style not in templates.STYLES:
            raise ValueError(f"style must be one of {', '.join(templates.STYLES)}, got {self.style!r}")
        if self.margin < 0:
            raise ValueError(f"margin must be non-negative, got {self.margin}")


FailureKind = Literal["no_answer", "unreadable", "no_probability", "crop"]  # no_answer: the backend gave none


@dataclass(frozen=True)
class AttributeFailure:
    """One attribute of one face the model's answer did not give (its text, not the image, is kept)."""

    face: int
    attribute: str
    reason: str
    answer: str | None = None
    kind: FailureKind = "unreadable"  # what callers act on; `reason` is only for people


class VLMAttributes:
    """Fills race/gender/age/emotion of face reports with a VLM (the assistant's AttributeEngine)."""

    def __init__(self, backend: VLMBackend, config: VLMAttributesConfig | None = None) -> None:
        self.backend = backend
        self.config = config or VLMAttributesConfig()
        self.source = self.config.source or f"vlm:{backend.label}"
        self.last_failures: list[AttributeFailure] = []

    def _messages(self, question: str) -> list[Message]:
        messages: list[Message] = []
        if self.config.style == "chat":
            messages.append({"role": "system", "content": templates.system_prompt()})
        messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]})
        return messages

    def _params(self, attribute: str) -> GenerationParams:
        choices = tuple(templates.choices(attribute)) if self.config.structured else None
        return GenerationParams(max_tokens=self.config.max_tokens, choices=choices, logprobs=True)

    def _question(self, attribute: str, face: FaceReport, n_faces: int) -> str:
        """The question about one attribute of one face, in the configured mode."""
        if self.config.mode == "crops" or n_faces == 1:
            return templates.question(attribute, self.config.style)
        person = templates.referent("ordinal", ordinal=face.id, side="left")  # ids run left to right
        return templates.question(f"person_{attribute}", self.config.style, referent=person)

    def annotate(self, rgb: np.ndarray, report: ImageReport) -> tuple[ImageReport, list[AttributeFailure]]:
        """The report with the configured attributes set from the VLM, and what could not be read."""
        jobs: list[tuple[FaceReport, str]] = []
        requests: list[VLMRequest] = []
        failures: list[AttributeFailure] = []
        for face in report.faces:
            image = rgb
            if self.config.mode == "crops":
                try:
                    image = crops.face_crop(rgb, face.box, self.config.margin, self.config.crop_size)
                except ValueError as error:
                    failures += [AttributeFailure(face.id, a, str(error), kind="crop") for a in self.config.attributes]
                    continue
            for attribute in self.config.attributes:
                question = self._question(attribute, face, len(report.faces))
                jobs.append((face, attribute))
                requests.append(VLMRequest([image], self._messages(question)))
        results = self._complete(requests, jobs)
        updates: dict[int, dict] = {face.id: {} for face in report.faces}
        for (face, attribute), result in zip(jobs, results, strict=True):
            value, failure = self._read(face.id, attribute, result)
            if failure is not None:
                failures.append(failure)
            updates[face.id][FIELDS[attribute]] = value
        faces = []
        for face in report.faces:
            update = updates[face.id]
            sources = dict(face.sources)
            for name, value in update.items():
                if value is None:
                    sources.pop(name, None)
                else:
                    sources[name] = self.source
            faces.append(face.model_copy(update={**update, "sources": sources}))
        return report.model_copy(update={"faces": faces}), failures

    def _complete(self, requests: list[VLMRequest], jobs: list[tuple[FaceReport, str]]) -> list:
        """One batch per attribute (a batch shares its params: the attribute's choice constraint)."""
        by_attribute: dict[str, list[int]] = {}
        for index, (_, attribute) in enumerate(jobs):
            by_attribute.setdefault(attribute, []).append(index)
        results: list = [None] * len(requests)
        for attribute, indices in by_attribute.items():
            answers = self.backend.complete_batch([requests[i] for i in indices], self._params(attribute))
            for index, answer in zip(indices, answers, strict=True):
                results[index] = answer
        return results

    def _read(self, face: int, attribute: str, result) -> tuple[object, AttributeFailure | None]:
        if isinstance(result, VLMError):
            return None, AttributeFailure(face, attribute, f"no answer: {result}", kind="no_answer")
        parsed = parse_answer(attribute, result.text)
        if not parsed.ok:
            return None, AttributeFailure(face, attribute, parsed.reason, result.text)
        score = min(1.0, math.exp(result.logprob)) if result.logprob is not None else None
        if attribute == "age_group":
            return AgeEstimate(group=parsed.label, score=score), None
        if score is None:  # LabelScore needs one: a backend that gives no logprobs cannot fill it honestly
            return None, AttributeFailure(face, attribute, "the backend returned no probability", result.text,
                                         kind="no_probability")
        return LabelScore(label=parsed.label, score=score), None

    def fill(self, rgb: np.ndarray, report: ImageReport) -> ImageReport:
        """AttributeEngine protocol: the filled report; failures are logged (text only) and kept in last_failures."""
        filled, failures = self.annotate(rgb, report)
        self.last_failures = failures
        self.last_attempts = len(report.faces) * len(self.config.attributes)
        for failure in failures:
            log.warning("VLM %s of face %d not read: %s", failure.attribute, failure.face, failure.reason)
        return filled


def served_attributes(
    base_url: str, model: str, api_key: str | None = None, style: Literal["chat", "paligemma"] = "chat",
    timeout: float = 120.0, recipe: Recipe | None = None,
) -> VLMAttributes:
    """The attribute engine over any OpenAI-compatible server (vLLM, a hosted model): what `--backend vlm` means.

    With the served adapter's `recipe`, faces are cut with its crop and sent as JPEG at its
    build's quality, as its training rows hold them; without one, faceqa.crops' crop as PNG."""
    from .openai_backend import OpenAIBackend

    backend = OpenAIBackend(base_url=base_url, model=model, api_key=api_key, timeout=timeout,
                            jpeg_quality=jpeg_quality_of(recipe))
    return VLMAttributes(backend, VLMAttributesConfig(style=style, **crop_of(recipe)))
