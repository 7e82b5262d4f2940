"""An OpenAI-compatible endpoint answering FaceXBench's multiple-choice questions.

Every image of a question travels as a data URL, in the question's order, before the
prompt (`mcq_prompt`: the benchmark's question, its instruction and "(A) option"
lines); the reply is read by the shared `parse_choice`. No system prompt: FaceXBench
asks the question alone.
"""

from __future__ import annotations

import time
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.facexbench import TASK, answered_choice
from faceqa.eval.openai_predictor import encoded_data_url
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput


class EndpointMCQ(Predictor):
    tasks = (TASK,)

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", max_tokens: int = 16,
                 timeout: float = 60.0, max_retries: int = 2, name: str | None = None):
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.model, self.max_tokens, self.name = model, max_tokens, name or model

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "OpenAI-compatible chat endpoint", "model": self.model,
                "endpoint": str(self.client.base_url)}

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        from openai.types.chat import ChatCompletion

        parts: list[dict[str, Any]] = []
        for path in item.extra["images"]:
            try:
                url = encoded_data_url(path.read_bytes(), path.name)
            except OSError as error:
                raise UnusableInput(f"{item.key}: {error.strerror or error}") from None
            parts.append({"type": "image_url", "image_url": {"url": url}})
        parts.append({"type": "text", "text": item.extra["prompt"]})
        body = {"model": self.model, "messages": [{"role": "user", "content": parts}], "temperature": 0.0,
                "max_tokens": self.max_tokens}
        started = time.perf_counter()
        response = self.client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        text = response.choices[0].message.content or "" if response.choices else ""
        return answered_choice(item, text, time.perf_counter() - started)

    def close(self) -> None:
        self.client.close()
