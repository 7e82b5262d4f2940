"""An OpenAI-compatible endpoint asked about items that carry their own prompt: benchmark MCQs, built-dataset rows.

Every image of an item travels as a data URL, in order, before the prompt text (a
FaceXBench question's `extra["images"]`, else the item's own encoded image); `prompt`
gives the text and `read` turns the reply into a prediction with the shared parsers.
No system prompt: the items are asked as they were written (FaceXBench asks the
question alone; built rows as they were trained).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput, encoded_image
from faceqa.vlm.endpoint import file_data_url, openai_client

Prompt = Callable[[FaceRecord, str], str]
Reader = Callable[[FaceRecord, str, str, float], Prediction]


def _image_urls(item: FaceRecord) -> list[str]:
    if "images" not in item.extra:
        return [file_data_url(encoded_image(item), item.image.name)]
    urls = []
    for path in item.extra["images"]:
        try:
            urls.append(file_data_url(path.read_bytes(), path.name))
        except OSError as error:
            raise UnusableInput(f"{item.key}: {error.strerror or error}") from None
    return urls


class ItemEndpoint(Predictor):
    def __init__(self, base_url: str, model: str, tasks: tuple[str, ...], prompt: Prompt, read: Reader, *,
                 api_key: str = "EMPTY", max_tokens: int = 16, timeout: float = 60.0, max_retries: int = 2,
                 name: str | None = None):
        self.client = openai_client(base_url, api_key, timeout, max_retries)
        self.model, self.max_tokens, self.name = model, max_tokens, name or model
        self.tasks, self.prompt, self.read = tasks, prompt, read

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "OpenAI-compatible chat endpoint", "model": self.model,
                "endpoint": str(self.client.base_url)}

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        from openai.types.chat import ChatCompletion

        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in _image_urls(item)]
        parts.append({"type": "text", "text": self.prompt(item, task)})
        body = {"model": self.model, "messages": [{"role": "user", "content": parts}], "temperature": 0.0,
                "max_tokens": self.max_tokens}
        started = time.perf_counter()
        response = self.client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        text = response.choices[0].message.content or "" if response.choices else ""
        return self.read(item, task, text, time.perf_counter() - started)

    def close(self) -> None:
        self.client.close()
