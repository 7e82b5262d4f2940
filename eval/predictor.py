"""The one interface the evaluator runs: a predictor answers one task about one labelled image.

Adapters (embedded engine, OpenAI-compatible endpoint, in-process VLM backend) stay
thin: they produce a canonical label or None (unanswered: unparseable text, no face),
the raw text when there is one, and the latency they measured themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from faceqa.finetune.readers import FaceRecord

TASKS = ("race", "gender", "age_group", "emotion")


@dataclass(frozen=True)
class Prediction:
    label: str | None
    latency: float
    text: str | None = None
    years: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Predictor(ABC):
    """`name` identifies the model in the prediction cache: change it when the answers would change."""

    name: str
    tasks: tuple[str, ...] = TASKS

    @abstractmethod
    def predict(self, item: FaceRecord, task: str) -> Prediction:
        """Answer `task` for `item`. Raise for a bad input or a failed call; never return a guess."""

    def describe(self) -> dict[str, Any]:
        """Model details for the model card: what it is, where it comes from, its licences."""
        return {"name": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook, most predictors hold nothing
        """Release clients or models."""
