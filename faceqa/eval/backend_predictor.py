"""A `faceqa.vlm` backend as a predictor: a checkpoint in this process (TransformersBackend) or any other.

The image is decoded by `faceqa.images` (the backend wants pixels), the question and
the parsing are the same as for an endpoint. A local model is one model on the CPU
or GPU: calls are serialised unless the backend says it is safe to share.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.predictor import ModelImage, Prediction, Predictor, UnusableInput, answered, prompts
from faceqa.images import BadImage, load_image


class VLMBackendPredictor(Predictor):
    def __init__(self, backend: Any, name: str, style: str = "chat", max_tokens: int = 64,
                 thread_safe: bool = False, image: ModelImage | None = None):
        from faceqa.vlm.base import GenerationParams

        self.backend, self.image = backend, image or ModelImage()
        self.name = name + (f"[{self.image.tag()}]" if self.image.tag() else "")
        self.prompts = prompts(style)
        self.params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
        self._lock = contextlib.nullcontext() if thread_safe else threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": f"faceqa.vlm {type(self.backend).__name__}"}

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        try:
            rgb = load_image(self.image(item))
        except BadImage as error:
            raise UnusableInput(str(error)) from None
        with self._lock:  # the prompts' {"type": "image"} part is the backends' own image placeholder
            started = time.perf_counter()
            text = self.backend.generate([rgb], self.prompts[task], self.params)
            latency = time.perf_counter() - started
        return answered(task, text, latency)

    def close(self) -> None:
        self.backend.close()
