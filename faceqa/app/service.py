"""Model work for the server: worker threads, each with its own engine, and a bounded analysis cache.

The engine's models keep per-call state (YuNet's input size, LiteRT's tensors), so an
engine is used by one thread at a time: `workers` engines, `workers` threads. The event
loop only awaits them, which keeps /health answering while every worker is busy.
Photos are decoded on their own thread just ahead of the model workers (at most one
request per worker decoded in advance, so decoded pixels stay bounded): decoding the
next photo overlaps the current analysis, and a broken photo is refused without
waiting for a model worker.
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
from functools import cached_property
from typing import TypeVar

import numpy as np

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
    rgb: np.ndarray | None = None  # decoded ahead of the model worker when its analysis is not cached

    @cached_property
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

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class Worker:
    """One engine, the assistant over it and the attribute engine of each served model.

    Used by one thread at a time. The assistant is given finished reports, so it never
    runs a model itself: the worker analyses (and caches) each photo once per model.
    """

    def __init__(self, config: ServerConfig):
        from faceqa.assistant import Assistant

        self.engine = FaceEngine(EngineConfig(threads=config.threads)).load()
        self.assistant = Assistant(engine=self.engine)
        self.attributes = {LOCAL_MODEL: None}
        self.assistants = {LOCAL_MODEL: self.assistant}
        if VLM_MODEL in config.models:
            from faceqa.vlm.answers import VLMAssistant

            attributes = self.attributes[VLM_MODEL] = _vlm_attributes(config)
            # The reports come filled by `attributes`; the VLM also takes hard referents, reasoning, open questions.
            self.assistants[VLM_MODEL] = VLMAssistant(attributes.backend, style=config.vlm_style, engine=self.engine)


def _vlm_attributes(config: ServerConfig):
    from faceqa.vlm.attributes import served_attributes

    return served_attributes(config.vlm_base_url, config.vlm_model, config.vlm_api_key, config.vlm_style,
                             timeout=config.request_timeout)


class Service:
    def __init__(self, config: ServerConfig, metrics: Metrics, worker: Callable[[ServerConfig], Worker] = Worker):
        self.config = config
        self.metrics = metrics
        self.cache = AnalysisCache(config.cache_size)
        metrics.cache_entries.set_function(lambda: len(self.cache))
        self._make_worker = worker
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._decoder: ThreadPoolExecutor | None = None
        self._ahead: asyncio.Semaphore | None = None
        self.pending = 0

    def start(self) -> None:
        """Load every worker's models now, so the first request does not pay for them."""
        for _ in range(self.config.workers):
            self._idle.put(self._make_worker(self.config))
        self._executor = ThreadPoolExecutor(self.config.workers, thread_name_prefix="faceqa-model")
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="faceqa-decode")
        self._ahead = asyncio.Semaphore(2 * self.config.workers)  # in a model worker, or decoded and next

    def stop(self) -> None:
        for executor in (self._executor, self._decoder):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    def check_model(self, model: str, param: str = "model") -> None:
        if model in self.config.models:
            return
        if model == VLM_MODEL:
            raise APIError(400, "faceqa-vlm is not configured on this server (start it with --vlm-base-url and "
                           "--vlm-model); use faceqa-local", param=param, code="model_not_configured")
        raise APIError(404, f"the model {model[:64]!r} does not exist; this server has {', '.join(self.config.models)}",
                       param=param, code="model_not_found")

    async def converse(self, model: str, turns: list[Turn], images: list[Image]) -> Answer:
        """Replay the earlier user questions to rebuild the conversation, then answer the last one."""
        if not images:
            raise APIError(400, "there is no photo in the conversation: add one as an image_url part of a user "
                           "message", param="messages", code="no_image")
        return await self._run(model, images, False, lambda worker, ready: self._converse(worker, model, turns, ready))

    async def analyze(self, model: str, images: list[Image | ImageError],
                      embeddings: bool) -> list[ImageReport | ImageError]:
        """One result per input in order; inputs that already failed (e.g. a refused URL) pass through."""

        def job(worker: Worker, ready: list[Image | ImageError]) -> list[ImageReport | ImageError]:
            return [item if isinstance(item, ImageError) else self._report(worker, model, item, embeddings)
                    for item in ready]

        return await self._run(model, images, embeddings, job, one_by_one=True)

    async def _run(self, model: str, images: list, embeddings: bool, job: Callable[[Worker, list], T],
                   one_by_one: bool = False) -> T:
        if self._executor is None or self._decoder is None or self._ahead is None:
            raise RuntimeError("Service.start() was not called")
        if self.pending >= self.config.max_pending:
            raise APIError(429, f"the server is busy ({self.pending} requests waiting); retry shortly",
                           code="server_busy", headers={"Retry-After": "1"})
        self.pending += 1
        self.metrics.pending.inc()
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            async with self._ahead:
                ready = await loop.run_in_executor(self._decoder, self._decode, model, images, embeddings, one_by_one)
                return await loop.run_in_executor(self._executor, self._on_worker, job, ready)
        finally:
            self.pending -= 1
            self.metrics.pending.dec()
            self.metrics.model_seconds.labels(model).observe(time.perf_counter() - start)

    def _decode(self, model: str, images: list, embeddings: bool, one_by_one: bool) -> list:
        """Decode every photo whose analysis is not cached; a broken one fails the request, or only
        its own slot (`one_by_one`, as in a batch analysis)."""
        ready = []
        for item in images:
            if isinstance(item, Image) and (model, item.digest, embeddings) not in self.cache:
                try:
                    item.rgb = self._load(item)
                except APIError as error:
                    if not one_by_one:
                        raise
                    item = ImageError(error=error.message)
            ready.append(item)
        return ready

    def _load(self, image: Image) -> np.ndarray:
        if image.rgb is not None:
            return image.rgb
        try:
            rgb = load_image(image.data, max_pixels=self.config.max_pixels)
        except BadImage as error:
            code = "image_too_large" if "pixel" in str(error) else "invalid_image"
            raise APIError(400, str(error), param=image.param, code=code) from None
        return rgb

    def _on_worker(self, job: Callable[[Worker, list], T], ready: list) -> T:
        worker = self._idle.get()
        try:
            return job(worker, ready)
        finally:
            self._idle.put(worker)

    def _converse(self, worker: Worker, model: str, turns: list[Turn], images: list[Image]) -> Answer:
        from faceqa.assistant import Conversation

        reports = [self._report(worker, model, image) for image in images]
        assistant = worker.assistants[model]
        conversation = Conversation()
        seen = given = 0
        for number, turn in enumerate(turns, start=1):
            seen += len(turn.images)
            if not seen or (not turn.question and number < len(turns)):
                continue  # nothing to replay before the first photo, or for a photo sent without a question
            # New photos start a new subject in the conversation; a follow-up passes none, keeping its focus.
            new = reports[:seen] if seen > given else None
            given = seen
            plan = None
            if number == len(turns):  # routed once: the plan says whether identities are needed
                if new is not None:
                    conversation.set_images(new)
                seeing = {"pixels": [self._load(i) for i in images[:seen]]} if model == VLM_MODEL else {}
                plan = assistant.plan(turn.question, reports[:seen], conversation, **seeing)
                reports = self._with_identities(worker, plan, reports[:seen], images)
                new = reports[:seen] if new is not None else None
            if new is None:
                conversation.reports = reports[:seen]
            answer = assistant.answer(new, turn.question, conversation, plan=plan,
                                      **(seeing if number == len(turns) else {}))
        return answer

    def _with_identities(self, worker: Worker, plan, reports: list[ImageReport], images: list[Image]
                         ) -> list[ImageReport]:
        """Reports with identity embeddings for the faces a same-person question compares.

        Embeddings cost more than the rest of the analysis, so they are computed only when the
        plan needs them; the conversation (which may outlive a request elsewhere) never keeps
        them, and this request still has its photos, so they are recomputed here.
        """
        if not plan.needs_identities:
            return reports
        reports = list(reports)
        wanted = plan.identity_faces
        for number in sorted({ref.image for ref in wanted}):
            rgb = self._load(images[number - 1])
            ids = {ref.face for ref in wanted if ref.image == number}
            faces = [f.model_copy(update={"embedding": worker.engine.embed(rgb, f)}) if f.id in ids else f
                     for f in reports[number - 1].faces]
            reports[number - 1] = reports[number - 1].model_copy(update={"faces": faces})
        return reports

    def _report(self, worker: Worker, model: str, image: Image, embeddings: bool = False) -> ImageReport:
        key = (model, image.digest, embeddings)
        report = self.cache.get(key)
        self.metrics.cache.labels("hit" if report is not None else "miss").inc()
        if report is not None:
            return report
        rgb = self._load(image)  # decoded ahead unless the analysis was cached then and evicted since
        report = worker.engine.analyze(rgb, embeddings=embeddings)
        attributes = worker.attributes[model]
        if attributes is not None:
            report = attributes.fill(rgb, report)
            if report.faces and len(attributes.last_failures) == len(report.faces) * len(attributes.config.attributes):
                # Nothing usable came back (backend down, or answers that are no labels): say so, don't guess.
                raise APIError(502, "the VLM backend gave no usable answer for any face (the server log says why); "
                               "faceqa-local still works", code="vlm_unavailable", type="server_error")
        self.cache.put(key, report)
        return report
