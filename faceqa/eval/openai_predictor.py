"""Any OpenAI-compatible chat endpoint (vLLM, `faceqa serve`, a hosted model) as a predictor.

The image travels as a base64 data URL (the dataset's bytes, or the face crop the adapter
was trained on: `ModelImage`) next to the task's question from `faceqa.prompts`
templates (the same words the dataset builder trains on);
the answer goes through the shared parser, so an endpoint is scored exactly as the
assistant would read it. The client is the official `openai` one, shared by all
worker threads (it pools connections).
"""

from __future__ import annotations

import time
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.predictor import IMAGE, ModelImage, Prediction, Predictor, answered, prompts
from faceqa.vlm.endpoint import file_data_url, openai_client


def cache_name(model: str, style: str, image: ModelImage) -> str:
    """How a served model's answers are named in the prediction cache: its name, its prompt style if not chat,
    and the crop if the images are not the dataset's own."""
    asked = [part for part in (style if style != "chat" else "", image.tag()) if part]
    return f"{model}[{' '.join(asked)}]" if asked else model


def with_image(messages: list[dict[str, Any]], url: str) -> list[dict[str, Any]]:
    """A task's chat messages (`prompts`) with the image placeholder as an OpenAI `image_url` part."""
    image = {"type": "image_url", "image_url": {"url": url}}
    return [m if m["role"] != "user" else {**m, "content": [image if p == IMAGE else p for p in m["content"]]}
            for m in messages]


class OpenAIEndpointPredictor(Predictor):
    """`style` picks the templates: "chat" (system prompt + question) or "paligemma" (the bare prefix)."""

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", style: str = "chat",
                 max_tokens: int = 64, timeout: float = 60.0, max_retries: int = 2, name: str | None = None,
                 image: ModelImage | None = None):
        self.prompts = prompts(style)
        self.client = openai_client(base_url, api_key, timeout, max_retries)
        self.model, self.max_tokens = model, max_tokens
        self.image = image or ModelImage()
        self.name = name or cache_name(model, style, self.image)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "OpenAI-compatible chat endpoint", "model": self.model,
                "endpoint": str(self.client.base_url)}

    def is_transient(self, error: Exception) -> bool:
        """No connection, a timeout, 429 or 5xx: the server's moment, not the input; a 4xx refuses the input."""
        import openai

        return isinstance(error, openai.APIConnectionError | openai.RateLimitError | openai.InternalServerError) \
            or super().is_transient(error)

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        from openai.types.chat import ChatCompletion

        # The endpoint decodes the bytes; the evaluator only does when it crops.
        messages = with_image(self.prompts[task], file_data_url(self.image(item), item.image.name))
        body = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        started = time.perf_counter()
        # The same client and wire format as chat.completions.create (retries, auth, timeouts, a typed
        # ChatCompletion back), minus create()'s walk of the request's TypedDict annotations, which costs
        # ~2 ms of CPU per call: at concurrency 16 on a fast server that, not the server, was the limit.
        response = self.client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        latency = time.perf_counter() - started
        return answered(task, response.choices[0].message.content or "" if response.choices else "", latency)

    def close(self) -> None:
        self.client.close()
