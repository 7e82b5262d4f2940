"""The one interface the evaluator runs: a predictor answers one task about one labelled image.

Adapters (embedded engine, OpenAI-compatible endpoint, in-process VLM backend) stay
thin: they produce a canonical label or None (unanswered: unparseable text, no face),
the raw text when there is one, and the latency they measured themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.prompts.taxonomy import ATTRIBUTES

IMAGE = {"type": "image"}  # where the image goes in a prompt; each adapter sends it its own way


def prompts(style: str = "chat") -> dict[str, list[dict[str, Any]]]:
    """Per task, the chat messages that ask it, worded by `faceqa.prompts` templates like the training data.

    "chat" adds the system prompt; "paligemma" is the bare question its fine-tuning used.
    """
    from faceqa.prompts import templates

    system = [{"role": "system", "content": templates.system_prompt()}] if style == "chat" else []
    return {
        task: [*system, {"role": "user", "content": [IMAGE, {"type": "text", "text": templates.question(task, style)}]}]
        for task in ATTRIBUTES
    }


class UnusableInput(ValueError):
    """This item can never be answered (unreadable image, missing file): record it, don't retry it."""


def encoded_image(item: FaceRecord) -> bytes:
    """The item's image bytes, or UnusableInput saying why there are none."""
    try:
        data = item.payload()
    except OSError as error:
        raise UnusableInput(f"{item.key}: {error.strerror or error}") from None
    if not data:
        raise UnusableInput(f"{item.key}: empty file (0 bytes)")
    return data


@dataclass(frozen=True)
class Prediction:
    label: str | None
    latency: float
    text: str | None = None
    years: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def answered(task: str, text: str, latency: float) -> Prediction:
    """A model's text read by the shared parser: its label, or unanswered with the parser's reason."""
    from faceqa.prompts.parser import parse_answer

    parsed = parse_answer(task, text)
    if parsed.ok:
        return Prediction(parsed.label, latency, text=text)
    return Prediction(None, latency, text=text, reason=parsed.reason)


class Predictor(ABC):
    """`name` identifies the model in the prediction cache: change it when the answers would change."""

    name: str
    tasks: tuple[str, ...] = ATTRIBUTES

    @abstractmethod
    def predict(self, item: FaceRecord, task: str) -> Prediction:
        """Answer `task` for `item`. Raise for a bad input or a failed call; never return a guess."""

    def describe(self) -> dict[str, Any]:
        """Model details for the model card: what it is, where it comes from, its licences."""
        return {"name": self.name}

    def is_transient(self, error: Exception) -> bool:
        """Whether `error` is the call's fault (retry it next run) rather than this input's (record it)."""
        return isinstance(error, OSError | TimeoutError)

    def close(self) -> None:  # noqa: B027 - optional hook, most predictors hold nothing
        """Release clients or models."""
