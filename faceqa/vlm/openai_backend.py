"""A VLM behind any OpenAI-compatible chat endpoint: vLLM, faceqa's own API, a hosted model.

Images travel as base64 `data:` URLs in `image_url` parts, so the server needs no
access to our files and nothing is written to disk. Retries with exponential
back-off on 429, 5xx, timeouts and connection errors are the official `openai`
client's own (it also honours `Retry-After`); this class adds a limit on requests
in flight, so a batch cannot flood a server that queues poorly.

Images go as lossless PNG unless `jpeg_quality` is set; then as JPEG at that quality,
encoded by `faceqa.crops.encode_jpeg` like the dataset builder's rows. A fine-tuned
adapter is served with the quality its recipe records (`faceqa.vlm.recipe.jpeg_quality_of`),
so it sees the JPEG artifacts it was trained on; a base or hosted model has no training
encoding to match, so it keeps PNG, which gives it the pixels exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from .base import (
    Completion,
    GenerationParams,
    ImageLike,
    Message,
    PromptOrMessages,
    VLMBackend,
    VLMError,
    VLMRequest,
    to_messages,
)
from .endpoint import image_data_url, openai_client


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class OpenAIBackend(VLMBackend):
    """Chat completions against `base_url` (e.g. `http://127.0.0.1:8000/v1`).

    `model` is the served model name or a LoRA adapter name registered with the
    server; when omitted, the server's first listed model is used. `jpeg_quality`: send
    images as JPEG at that quality (0-100) instead of PNG.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 8,
        jpeg_quality: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if jpeg_quality is not None and not 0 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 0 to 100 (None: PNG), got {jpeg_quality}")
        self.base_url = base_url
        self.concurrency = concurrency
        self.jpeg_quality = jpeg_quality
        self.timeout = timeout
        self.client = openai_client(base_url, api_key, timeout, max_retries)
        self._model = model
        self._in_flight = threading.BoundedSemaphore(concurrency)

    @property
    def label(self) -> str:
        return f"{self.name}:{self._model or self.base_url}"

    @property
    def model(self) -> str:
        if self._model is None:
            try:
                models = self.client.models.list().data
            except openai.OpenAIError as error:
                raise VLMError(f"cannot list models at {self.base_url}: {_short(str(error))}") from None
            if not models:
                raise VLMError(f"{self.base_url} serves no model")
            self._model = models[0].id
        return self._model

    def _wire_messages(self, images: Sequence[ImageLike], prompt: PromptOrMessages) -> list[Message]:
        """OpenAI messages with each `{"type": "image"}` part replaced by its data URL, in order."""
        urls = iter([image_data_url(image, self.jpeg_quality) for image in images])
        wire = []
        for message in to_messages(images, prompt):
            content = message["content"]
            if isinstance(content, list):
                content = [
                    {"type": "image_url", "image_url": {"url": next(urls)}} if part.get("type") == "image" else part
                    for part in content
                ]
            wire.append({**message, "content": content})
        return wire

    def _request_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.logprobs:
            kwargs["logprobs"] = True
        if params.json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": params.json_schema, "strict": True},
            }
        if params.choices is not None:
            # vLLM's extension; the pre-0.12 `guided_choice` field no longer exists.
            kwargs["extra_body"] = {"structured_outputs": {"choice": list(params.choices)}}
        return kwargs

    def complete(
        self, images: Sequence[ImageLike], prompt: PromptOrMessages, params: GenerationParams | None = None
    ) -> Completion:
        params = params or GenerationParams()
        messages = self._wire_messages(images, prompt)
        with self._in_flight:
            try:
                response = self.client.chat.completions.create(
                    model=self.model, messages=cast(list[ChatCompletionMessageParam], messages),
                    **self._request_kwargs(params),
                )
            except openai.APITimeoutError:
                raise VLMError(f"{self.base_url}: no answer within {self.timeout:g} s (retries exhausted)",
                               retryable=True) from None
            except openai.APIConnectionError:
                raise VLMError(f"cannot reach {self.base_url} (retries exhausted)", retryable=True) from None
            except openai.APIStatusError as error:
                raise VLMError(
                    f"{self.base_url} answered {error.status_code}: {_short(str(error.message))}",
                    retryable=error.status_code in (408, 409, 429) or error.status_code >= 500,  # openai's own rule
                ) from None
        if not response.choices:
            raise VLMError(f"{self.base_url} returned no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
            logprob=self._logprob(choice) if params.logprobs else None,
        )

    def _logprob(self, choice) -> float:
        """Sum of the answer tokens' log-probabilities (vLLM reports raw-model values by default)."""
        entries = choice.logprobs.content if choice.logprobs is not None else None
        if not entries:
            raise VLMError(f"{self.base_url} returned no logprobs although they were asked for")
        return float(sum(entry.logprob for entry in entries))

    def complete_batch(
        self, requests: Sequence[VLMRequest], params: GenerationParams | None = None
    ) -> list[Completion | VLMError]:
        """Send up to `concurrency` requests at once; results keep the input order."""

        def one(request: VLMRequest) -> Completion | VLMError:
            try:
                return self.complete(request.images, request.prompt, params)
            except VLMError as error:
                return error
            except (ValueError, TypeError) as error:
                return VLMError(str(error))

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(requests)))) as pool:
            return list(pool.map(one, requests))

    def close(self) -> None:
        self.client.close()
