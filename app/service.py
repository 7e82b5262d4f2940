"""Model work for the server: worker threads, each with its own engine, and a bounded analysis cache.

The engine's models keep per-call state (YuNet's input size, LiteRT's tensors), so an
engine is used by one thread at a time: `workers` engines, `workers` threads. The event
loop only awaits them, which keeps /health answering while every worker is busy.
Analyses are cached by image hash so a multi-turn conversation, which resends its
images with every request, pays for each image's analysis once.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from faceqa.faces.engine import EngineConfig, FaceEngine
from faceqa.images import BadImage, load_image
from faceqa.schema import Answer, ImageError, ImageReport

from .config import LOCAL_MODEL, VLM_MODEL, ServerConfig
from .dialogue import Turn
from .errors import APIError
from .metrics import Metrics

T = TypeVar("T")


@dataclass
class Image:
    data: bytes
    param: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class AnalysisCache:
    """Least-recently-used image reports; reports are small, and the pixels are never kept."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple, ImageReport] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> ImageReport | None:
        with self._lock:
            report = self._items.get(key)
            if report is not None:
                self._items.move_to_end(key)
            return report

    def put(self, key: tuple, report: ImageReport) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._items[key] = report
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class Worker:
    """One engine and the assistants over it, one per served model; used by one thread at a time."""

    def __init__(self, config: ServerConfig):
        from faceqa.assistant import Assistant

        self.engine = FaceEngine(EngineConfig(threads=config.threads)).load()
        self.attributes = {LOCAL_MODEL: None}
        if VLM_MODEL in config.models:
            self.attributes[VLM_MODEL] = _vlm_attributes(config)
        self.assistants = {model: Assistant(engine=self.engine, attributes=attributes)
                           for model, attributes in self.attributes.items()}


def _vlm_attributes(config: ServerConfig):
    from faceqa.vlm.attributes import VLMAttributes
    from faceqa.vlm.backends import OpenAIBackend

    backend = OpenAIBackend(base_url=config.vlm_base_url, model=config.vlm_model, api_key=config.vlm_api_key)
    return VLMAttributes(backend)


class Service:
    def __init__(self, config: ServerConfig, metrics: Metrics, worker: Callable[[ServerConfig], Worker] = Worker):
        self.config = config
        self.metrics = metrics
        self.cache = AnalysisCache(config.cache_size)
        self._make_worker = worker
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self.pending = 0

    def start(self) -> None:
        """Load every worker's models now, so the first request does not pay for them."""
        for _ in range(self.config.workers):
            self._idle.put(self._make_worker(self.config))
        self._executor = ThreadPoolExecutor(self.config.workers, thread_name_prefix="faceqa-model")

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def check_model(self, model: str, param: str = "model") -> None:
        if model in self.config.models:
            return
        if model == VLM_MODEL:
            raise APIError(400, "faceqa-vlm is not configured on this server (start it with --vlm-base-url and "
                           "--vlm-model); use faceqa-local", param=param, code="model_not_configured")
        raise APIError(404, f"the model {model!r} does not exist; this server has {', '.join(self.config.models)}",
                       param=param, code="model_not_found")

    async def converse(self, model: str, turns: list[Turn], images: list[Image]) -> Answer:
        """Replay the earlier user questions to rebuild the conversation, then answer the last one."""
        return await self._run(model, lambda worker: self._converse(worker, model, turns, images))

    async def analyze(self, model: str, images: list[Image | ImageError],
                      embeddings: bool) -> list[ImageReport | ImageError]:
        """One result per input in order; inputs that already failed (e.g. a refused URL) pass through."""

        def job(worker: Worker) -> list[ImageReport | ImageError]:
            results: list[ImageReport | ImageError] = []
            for image in images:
                if isinstance(image, ImageError):
                    results.append(image)
                    continue
                try:
                    results.append(self._report(worker, model, image, embeddings))
                except APIError as error:  # one bad image never sinks the batch
                    results.append(ImageError(error=error.message))
            return results

        return await self._run(model, job)

    async def _run(self, model: str, job: Callable[[Worker], T]) -> T:
        if self._executor is None:
            raise RuntimeError("Service.start() was not called")
        if self.pending >= self.config.max_pending:
            raise APIError(429, f"the server is busy ({self.pending} requests waiting); retry shortly",
                           code="server_busy", headers={"Retry-After": "1"})
        self.pending += 1
        self.metrics.pending.inc()
        start = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._on_worker, job)
        finally:
            self.pending -= 1
            self.metrics.pending.dec()
            self.metrics.model_seconds.labels(model).observe(time.perf_counter() - start)

    def _on_worker(self, job: Callable[[Worker], T]) -> T:
        worker = self._idle.get()
        try:
            return job(worker)
        finally:
            self._idle.put(worker)

    def _converse(self, worker: Worker, model: str, turns: list[Turn], images: list[Image]) -> Answer:
        from faceqa.assistant import Conversation

        assistant = worker.assistants[model]
        reports = [self._report(worker, model, image) for image in images]
        conversation = Conversation()
        seen = 0
        for turn in turns[:-1]:
            seen += len(turn.images)
            if turn.question:
                assistant.answer(reports[:seen], turn.question, conversation)
        return assistant.answer(reports, turns[-1].question, conversation)

    def _report(self, worker: Worker, model: str, image: Image, embeddings: bool = False) -> ImageReport:
        key = (model, image.digest, embeddings)
        report = self.cache.get(key)
        self.metrics.cache.labels("hit" if report is not None else "miss").inc()
        if report is not None:
            return report
        try:
            rgb = load_image(image.data, max_pixels=self.config.max_pixels)
        except BadImage as error:
            code = "image_too_large" if "pixel" in str(error) else "invalid_image"
            raise APIError(400, str(error), param=image.param, code=code) from None
        report = worker.engine.analyze(rgb, embeddings=embeddings)
        attributes = worker.attributes[model]
        if attributes is not None:
            report = attributes.fill(rgb, report)
        self.cache.put(key, report)
        return report
