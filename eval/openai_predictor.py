"""Any OpenAI-compatible chat endpoint (vLLM, `faceqa serve`, a hosted model) as a predictor.

The image travels as a base64 data URL next to the task's question from `faceqa.prompts`
templates (the same words the dataset builder trains on);
the answer goes through the shared parser, so an endpoint is scored exactly as the
assistant would read it. The client is the official `openai` one, shared by all
worker threads (it pools connections).
"""

from __future__ import annotations

import base64
import mimetypes
import time
from pathlib import Path
from typing import Any

from faceqa.eval.predictor import TASKS, Prediction, Predictor
from faceqa.eval.runner import UnusableInput
from faceqa.finetune.readers import FaceRecord


def data_url(path: Path) -> str:
    """The file's bytes as a data URL; the endpoint decodes it, the evaluator never does."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnusableInput(f"{path}: {error.strerror or error}") from None
    if not data:
        raise UnusableInput(f"{path}: empty file (0 bytes)")
    mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class OpenAIEndpointPredictor(Predictor):
    """`style` picks the templates: "chat" (system prompt + question) or "paligemma" (the bare prefix)."""

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", style: str = "chat",
                 max_tokens: int = 64, timeout: float = 60.0, max_retries: int = 2, name: str | None = None):
        from openai import OpenAI

        from faceqa.prompts import templates

        self.questions = {task: templates.question(task, style) for task in TASKS}
        self.system = templates.system_prompt() if style == "chat" else None
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.model, self.max_tokens = model, max_tokens
        self.name = name or (model if style == "chat" else f"{model}[{style}]")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "OpenAI-compatible chat endpoint", "model": self.model,
                "endpoint": str(self.client.base_url)}

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        from openai.types.chat import ChatCompletion

        from faceqa.prompts.parser import parse_answer

        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(item.image)}},
            {"type": "text", "text": self.questions[task]},
        ]})
        body = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": self.max_tokens}
        started = time.perf_counter()
        # The same client and wire format as chat.completions.create (retries, auth, timeouts, a typed
        # ChatCompletion back), minus create()'s walk of the request's TypedDict annotations, which costs
        # ~2 ms of CPU per call: at concurrency 16 on a fast server that, not the server, was the limit.
        response = self.client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        latency = time.perf_counter() - started
        text = response.choices[0].message.content or "" if response.choices else ""
        parsed = parse_answer(task, text)
        if parsed.ok:
            return Prediction(parsed.label, latency, text=text)
        return Prediction(None, latency, text=text, reason=parsed.reason)

    def close(self) -> None:
        self.client.close()
