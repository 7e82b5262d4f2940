"""Model work for the server: worker threads, each with its own engine, and a bounded analysis cache.

The engine's models keep per-call state (YuNet's input size, LiteRT's tensors), so an
engine is used by one thread at a time: `workers` engines, `workers` threads. The event
loop only awaits them, which keeps /health answering while every worker is busy.
Each served model has its own pool (workers, threads, queue, decode-ahead bound), so a
slow or failing VLM backend behind faceqa-vlm never holds up a faceqa-local request.
Photos are decoded on their pool's own thread just ahead of the model workers (at most one
request per worker decoded in advance, so decoded pixels stay bounded): decoding the
next photo overlaps the current analysis, and a broken photo is refused without
waiting for a model worker.
Work a client no longer waits for (its request timed out) stops: a job still queued is
cancelled, a running one stops at its next photo or VLM call, and VLM calls and their
retries only get the time left before the request's deadline.
Analyses are cached by image hash so a multi-turn conversation, which resends its
images with every request, pays for each image's analysis once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, TypeVar, cast

import numpy as np

from faceqa.faces.engine import EngineConfig, FaceEngine
from faceqa.images import BadImage, load_image
from faceqa.schema import Answer, ImageError, ImageReport
from faceqa.vlm.base import Completion, GenerationParams, ImageLike, PromptOrMessages, VLMBackend, VLMError, VLMRequest

from .config import VLM_MODEL, ServerConfig
from .dialogue import UserTurn
from .errors import APIError
from .metrics import Metrics

T = TypeVar("T")
log = logging.getLogger("faceqa.app")
VLM_ATTEMPTS = 2  # per VLM call, while the request has time left


class Abandoned(Exception):
    """The request this work is for has timed out or gone: stop, nobody reads the result."""


class Budget:
    """One request's deadline (time.monotonic()) and whether its client still waits; shared with its job."""

    def __init__(self, until: float):
        self.until = until
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def left(self) -> float:
        return 0.0 if self._cancelled.is_set() else max(0.0, self.until - time.monotonic())

    def check(self) -> None:
        if self.left() <= 0:
            raise Abandoned()


@dataclass
class RequestImage:
    """One image of a request, as sent (not the assistant's `Image`, which is anything it can load)."""

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
    """One engine, the assistant of its model over it, and that model's attribute engine (None: the engine's own).

    Used by one thread at a time. The assistant is given finished reports, so it never
    analyses a photo itself: the worker analyses (and caches) each photo once (faceqa-vlm's
    assistant still asks the VLM about reasoning and open questions). `budget` is the request
    it currently works for (set by the service before each job); every VLM call is bounded by it.
    """

    def __init__(self, config: ServerConfig, model: str):
        from faceqa.assistant import Assistant

        self.engine = FaceEngine(EngineConfig(threads=config.threads)).load()
        self.assistant = Assistant(engine=self.engine)
        self.budget = Budget(float("inf"))
        self.attributes = None
        if model == VLM_MODEL:
            from faceqa.vlm.answers import VLMAssistant

            self.attributes = _vlm_attributes(config, lambda: self.budget)
            # The reports come filled by `attributes`; the VLM also takes hard referents, reasoning, open questions.
            self.assistant = VLMAssistant(self.attributes.backend, style=config.vlm_style, engine=self.engine,
                                          crop=self.attributes.config)


class DeadlineBackend(VLMBackend):
    """The VLM server, bounded by the request each call is for.

    Nothing is sent once the request is abandoned or past its deadline; each call gets the
    time left as its timeout, and a failed call is tried again (`VLM_ATTEMPTS` in all) only
    while time is left and only if asking again may help (`VLMError.retryable`: not a 400).
    The openai client's own retries are off: they do not know the deadline.
    """

    def __init__(self, inner: VLMBackend, client: object, budget: Callable[[], Budget]):
        self.inner = inner
        self.name = inner.name
        self._client = client  # the inner backend's openai client, from which each attempt's is derived
        self._budget = budget

    @property
    def label(self) -> str:
        return self.inner.label

    def _bounded(self) -> bool:
        left = self._budget().left()
        if left <= 0:
            return False
        self.inner.client = self._client.with_options(timeout=left, max_retries=0)  # type: ignore[attr-defined]
        return True

    def complete(self, images: Sequence[ImageLike], prompt: PromptOrMessages,
                 params: GenerationParams | None = None) -> Completion:
        [result] = self.complete_batch([VLMRequest(list(images), prompt)], params)
        if isinstance(result, VLMError):
            raise result
        return result

    def complete_batch(self, requests: Sequence[VLMRequest],
                       params: GenerationParams | None = None) -> list[Completion | VLMError]:
        late = VLMError("not asked: the request timed out or was abandoned")
        results: list[Completion | VLMError] = [late] * len(requests)
        todo = list(range(len(requests)))
        for _ in range(VLM_ATTEMPTS):
            if not todo or not self._bounded():
                break
            answers = self.inner.complete_batch([requests[i] for i in todo], params)
            for index, answer in zip(todo, answers, strict=True):
                results[index] = answer
            todo = [index for index, answer in zip(todo, answers, strict=True)
                    if isinstance(answer, VLMError) and answer.retryable]
        return results

    def close(self) -> None:
        self.inner.close()


def _vlm_attributes(config: ServerConfig, budget: Callable[[], Budget]):
    from faceqa.vlm.attributes import VLMAttributes, VLMAttributesConfig
    from faceqa.vlm.openai_backend import OpenAIBackend
    from faceqa.vlm.recipe import crop_of, jpeg_quality_of

    if config.vlm_base_url is None or config.vlm_model is None:
        raise ValueError("faceqa-vlm needs vlm_base_url and vlm_model (ServerConfig.check says so first)")
    inner = OpenAIBackend(config.vlm_base_url, config.vlm_model, config.vlm_api_key, timeout=config.request_timeout,
                          jpeg_quality=jpeg_quality_of(config.vlm_recipe))  # the adapter's training encoding
    style = cast(Literal["chat", "paligemma"], config.vlm_style)  # one of prompts.templates.STYLES, by check()
    settings = VLMAttributesConfig(style=style, **crop_of(config.vlm_recipe))  # the crop the adapter was trained on
    return VLMAttributes(DeadlineBackend(inner, inner.client, budget), settings)


class _Pool:
    """The workers of one model with their threads, queue and decode-ahead bound."""

    def __init__(self, workers: list, threads_name: str):
        self.idle: queue.Queue = queue.Queue()
        for worker in workers:
            self.idle.put(worker)
        self.executor = ThreadPoolExecutor(len(workers), thread_name_prefix=f"{threads_name}-model")
        self.decoder = ThreadPoolExecutor(1, thread_name_prefix=f"{threads_name}-decode")
        self.ahead = asyncio.Semaphore(2 * len(workers))  # in a model worker, or decoded and next
        self.pending = 0

    def stop(self) -> None:
        for executor in (self.executor, self.decoder):
            executor.shutdown(wait=False, cancel_futures=True)


class Service:
    def __init__(self, config: ServerConfig, metrics: Metrics,
                 worker: Callable[[ServerConfig, str], Worker] = Worker):
        self.config = config
        self.metrics = metrics
        self.cache = AnalysisCache(config.cache_size)
        metrics.cache_entries.set_function(lambda: len(self.cache))
        self._make_worker = worker
        self._pools: dict[str, _Pool] = {}

    @property
    def pending(self) -> int:
        """Requests waiting for or using a model worker, all models together."""
        return sum(pool.pending for pool in self._pools.values())

    def start(self) -> None:
        """Load every worker's models now, so the first request does not pay for them."""
        for model in self.config.models:
            workers = [self._make_worker(self.config, model) for _ in range(self.config.workers)]
            self._pools[model] = _Pool(workers, model)

    def stop(self) -> None:
        for pool in self._pools.values():
            pool.stop()

    def check_model(self, model: str, param: str = "model") -> None:
        if model in self.config.models:
            return
        if model == VLM_MODEL:
            raise APIError(400, "faceqa-vlm is not configured on this server (start it with --vlm-base-url and "
                           "--vlm-model); use faceqa-local", param=param, code="model_not_configured")
        raise APIError(404, f"the model {model[:64]!r} does not exist; this server has {', '.join(self.config.models)}",
                       param=param, code="model_not_found")

    async def converse(self, model: str, turns: list[UserTurn], images: list[RequestImage], until: float) -> Answer:
        """Replay the earlier user questions to rebuild the conversation, then answer the last one."""
        if not images:
            raise APIError(400, "there is no photo in the conversation: add one as an image_url part of a user "
                           "message", param="messages", code="no_image")
        return await self._run(model, images, False, until,
                               lambda worker, ready: self._converse(worker, model, turns, ready))

    async def analyze(self, model: str, images: list[RequestImage | ImageError], embeddings: bool,
                      until: float) -> list[ImageReport | ImageError]:
        """One result per input in order; an input that failed (a refused URL, a broken photo, no usable VLM
        answer) is an ImageError in its place and the others are still analysed."""

        def one(worker: Worker, item: RequestImage | ImageError) -> ImageReport | ImageError:
            if isinstance(item, ImageError):
                return item
            try:
                return self._report(worker, model, item, embeddings)
            except Abandoned:
                raise
            except APIError as error:
                return ImageError(error=error.message)
            except Exception:  # a bug of ours on this photo: still only this photo's entry
                log.exception("analysing %s failed", item.param)
                return ImageError(error="the photo could not be analysed (a server error; the server log says why)")

        def job(worker: Worker, ready: list[RequestImage | ImageError]) -> list[ImageReport | ImageError]:
            return [one(worker, item) for item in ready]

        return await self._run(model, images, embeddings, until, job, one_by_one=True)

    async def _run(self, model: str, images: list, embeddings: bool, until: float, job: Callable[[Worker, list], T],
                   one_by_one: bool = False) -> T:
        pool = self._pools.get(model)
        if pool is None:
            raise RuntimeError("Service.start() was not called")
        if pool.pending >= self.config.max_pending:
            raise APIError(429, f"the server is busy ({pool.pending} {model} requests waiting); retry shortly",
                           code="server_busy", headers={"Retry-After": "1"})
        pool.pending += 1
        self.metrics.pending.inc()
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        budget = Budget(until)
        try:
            async with pool.ahead:
                ready = await loop.run_in_executor(pool.decoder, self._decode, model, images, embeddings, one_by_one)
                return await loop.run_in_executor(pool.executor, self._on_worker, pool, budget, job, ready)
        except Abandoned:  # the deadline passed in the worker a moment before the request's own timeout fired
            raise APIError(408, f"the request took longer than this server's {self.config.request_timeout:g} s "
                           "limit", code="request_timeout") from None
        finally:
            # A queued job whose await was cancelled (the request timed out) was cancelled with it; a running
            # one stops at its next check. Finished work is not affected.
            budget.cancel()
            pool.pending -= 1
            self.metrics.pending.dec()
            self.metrics.model_seconds.labels(model).observe(time.perf_counter() - start)

    def _decode(self, model: str, images: list, embeddings: bool, one_by_one: bool) -> list:
        """Decode every photo whose analysis is not cached; a broken one fails the request, or only
        its own slot (`one_by_one`, as in a batch analysis)."""
        ready = []
        for item in images:
            if isinstance(item, RequestImage) and (model, item.digest, embeddings) not in self.cache:
                try:
                    item.rgb = self._load(item)
                except APIError as error:
                    if not one_by_one:
                        raise
                    item = ImageError(error=error.message)
            ready.append(item)
        return ready

    def _load(self, image: RequestImage) -> np.ndarray:
        if image.rgb is not None:
            return image.rgb
        try:
            return load_image(image.data, max_pixels=self.config.max_pixels)
        except BadImage as error:
            code = "image_too_large" if error.kind == "too_large" else "invalid_image"
            raise APIError(400, str(error), param=image.param, code=code) from None
        except Exception:  # a decoder's own bug on hostile bytes: still this photo's error, not the server's
            log.exception("decoding %s failed", image.param)
            raise APIError(400, "image data: the photo could not be decoded", param=image.param,
                           code="invalid_image") from None

    def _on_worker(self, pool: _Pool, budget: Budget, job: Callable[[Worker, list], T], ready: list) -> T:
        budget.check()
        worker = pool.idle.get()
        try:
            worker.budget = budget
            return job(worker, ready)
        finally:
            pool.idle.put(worker)
    def _converse(self, worker: Worker, model: str, turns: list[UserTurn], images: list[RequestImage]) -> Answer:
        from faceqa.assistant import Conversation

        reports = [self._report(worker, model, image) for image in images]
        assistant = worker.assistant
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

    def _with_identities(self, worker: Worker, plan, reports: list[ImageReport], images: list[RequestImage]
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

    def _report(self, worker: Worker, model: str, image: RequestImage, embeddings: bool = False) -> ImageReport:
        worker.budget.check()
        key = (model, image.digest, embeddings)
        report = self.cache.get(key)
        self.metrics.cache.labels("hit" if report is not None else "miss").inc()
        if report is not None:
            return report
        rgb = self._load(image)  # decoded ahead unless the analysis was cached then and evicted since
        report = worker.engine.analyze(rgb, embeddings=embeddings)
        attributes = worker.attributes
        if attributes is not None:
            report = attributes.fill(rgb, report)
            if report.faces and len(attributes.last_failures) == len(report.faces) * len(attributes.config.attributes):
                # Nothing usable came back (backend down, or answers that are no labels): say so, don't guess.
                raise APIError(502, "the VLM backend gave no usable answer for any face (the server log says why); "
                               "faceqa-local still works", code="vlm_unavailable", type="server_error")
        self.cache.put(key, report)
        return report
