"""One interface for every VLM backend: images + a prompt (or chat messages) in, text out.

Callers (the VLM attribute engine, the assistant, benchmarks) never know whether the
model runs in this process or behind an OpenAI-compatible server. Messages use the
OpenAI chat shape; images are passed separately, in order, and a message refers to
them with `{"type": "image"}` parts, so nothing here depends on how a backend
transports pixels.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

ImageLike = np.ndarray | Image.Image
Message = dict[str, Any]
PromptOrMessages = str | Sequence[Message]


class VLMError(RuntimeError):
    """One request could not be answered; the message says why (no image data in it).

    `retryable` says whether asking again may help: a timeout, a lost connection or a server
    error may pass; a request the server refused (400, 401, 404, 413, 422...) or could not parse
    comes back the same, so callers that retry skip it.
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and output constraints, the same for every backend.

    `json_schema` asks for JSON valid against the schema (OpenAI `response_format`);
    `choices` asks for exactly one of the strings (vLLM `structured_outputs.choice`).
    Temperature 0 is greedy decoding, which is what makes answers reproducible.
    `logprobs` asks for the answer's log-probability under the raw model (before any
    constraint or temperature), which is what a confidence can honestly be made of.
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict | None = None
    choices: tuple[str, ...] | None = None
    logprobs: bool = False

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.json_schema is not None and self.choices is not None:
            raise ValueError("give either json_schema or choices, not both")
        if self.choices is not None and (not self.choices or not all(self.choices)):
            raise ValueError("choices must be a non-empty list of non-empty strings")


@dataclass(frozen=True)
class VLMRequest:
    """One item of a batch."""

    images: Sequence[ImageLike]
    prompt: PromptOrMessages


@dataclass(frozen=True)
class Completion:
    """Generated text with the token counts that throughput figures are made of.

    `logprob` (when asked for) is the sum of the raw model's log-probabilities of the
    answer's tokens, the end-of-sequence token excluded.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = field(default="stop")
    logprob: float | None = None


def to_pil(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image or an HxWx3 uint8 RGB array (faceqa's image type)."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"empty image {image.shape}")
        return Image.fromarray(image, mode="RGB")
    raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")


def _is_image_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "image"


def to_messages(images: Sequence[ImageLike], prompt: PromptOrMessages) -> list[Message]:
    """Chat messages whose `{"type": "image"}` parts match `images` one to one.

    A plain prompt becomes one user turn with the images first. Messages without any
    image part get the images prepended to their last user turn, which is where
    every supported chat template expects them.
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("empty prompt")
        parts: list[dict] = [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt}]
        return [{"role": "user", "content": parts}]
    messages = [copy.copy(dict(m)) for m in prompt]
    if not messages:
        raise ValueError("no messages")
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"unknown message role {message.get('role')!r}")
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = list(content)
        elif not isinstance(content, str):
            raise ValueError(f"message content must be a string or a list of parts, got {type(content).__name__}")
    n_parts = sum(
        _is_image_part(p) for m in messages if isinstance(m["content"], list) for p in m["content"]
    )
    if n_parts == 0 and images:
        users = [m for m in messages if m["role"] == "user"]
        if not users:
            raise ValueError("images given but there is no user message to attach them to")
        last = users[-1]
        text = last["content"]
        tail = [{"type": "text", "text": text}] if isinstance(text, str) else text
        last["content"] = [{"type": "image"} for _ in images] + tail
    elif n_parts != len(images):
        raise ValueError(f"messages refer to {n_parts} images but {len(images)} were given")
    return messages


class VLMBackend(ABC):
    """A vision-language model that answers a prompt about zero or more images."""

    name: str = "vlm"

    @property
    def label(self) -> str:
        """Which model answers, for provenance (FaceReport.sources); never needs a round trip."""
        return self.name

    @abstractmethod
    def complete(
        self, images: Sequence[ImageLike], prompt: PromptOrMessages, params: GenerationParams | None = None
    ) -> Completion:
        """Answer one request; raise VLMError when the model cannot."""

    def complete_batch(
        self, requests: Sequence[VLMRequest], params: GenerationParams | None = None
    ) -> list[Completion | VLMError]:
        """Answer many requests; a failed item yields its VLMError and never sinks the rest."""
        results: list[Completion | VLMError] = []
        for request in requests:
            try:
                results.append(self.complete(request.images, request.prompt, params))
            except (VLMError, ValueError, TypeError) as error:
                results.append(error if isinstance(error, VLMError) else VLMError(str(error)))
        return results

    def generate(
        self, images: Sequence[ImageLike], prompt: PromptOrMessages, params: GenerationParams | None = None
    ) -> str:
        return self.complete(images, prompt, params).text

    def generate_batch(
        self, requests: Sequence[VLMRequest], params: GenerationParams | None = None
    ) -> list[str | VLMError]:
        return [r if isinstance(r, VLMError) else r.text for r in self.complete_batch(requests, params)]

    def close(self) -> None:  # noqa: B027 - backends holding connections override it
        """Release connections or memory; the backend is unusable afterwards."""

    def __enter__(self) -> VLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
