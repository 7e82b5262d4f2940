"""Batched offline VLM evaluation on GPUs: Ray Data's vLLM integration (`ray.data.llm`) into the evaluator's cache.

    (item, task) rows not yet cached -> ray.data.from_items -> request (image as a data URL,
      the task's question from faceqa.prompts, greedy) -> PrepareMultimodal -> ChatTemplate
      -> Tokenize -> vLLM engine (`replicas` copies, each on `tensor_parallel` GPUs)
      -> Detokenize -> answer (the shared parser) -> one prediction-cache line per row

The cache lines are those an endpoint run writes, under the same model name, so
`evaluate(items, BatchAnswers(settings), OUT, config)` scores them and writes the
report and model card of any other run, asking nothing; and a rerun skips what is
cached. Lines are written as rows come back; rows still inside the engine when the
driver stops are asked again (batch-granular resumption, unlike the call-granular runner).

One bad image never sinks a batch. A map that raises fails the whole Ray Data job, so
the request step (`Request`, a flat_map on `croppers` actors, each loading the face
detector once) turns an image with no face, or none at all, into no request: the row
goes to a small actor the driver drains (`Unusable`), and is cached as the runner
caches an `UnusableInput` (`error_kind: unusable`, never asked again). A row vLLM
fails (`should_continue_on_error`; Ray hands such rows back past the postprocess, as
the request with its image) is cached as the runner caches an input's own error
(`error_kind: failed`, asked again with `retry_failed`), without the request.

`BatchSettings.for_adapter` reads a LoRA adapter's recipe as `faceqa eval run` does: the
prompt style, the face crop its build made and the build's JPEG quality, so a batch run
is shown the very bytes a training row holds.

On the GPU machines: `pip install 'ray[llm]==2.60.0'` (it brings its own vLLM). The
model folder (and LoRA adapter) must be readable on every node. Not run here (no GPU):
the tests build and validate the processor, and run the Ray Data path around it with a
stand-in where the vLLM engine goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceqa.cluster import RaySettings, connect
from faceqa.datasets.readers import FaceRecord
from faceqa.eval.cache import PredictionCache
from faceqa.eval.openai_predictor import cache_name, with_image
from faceqa.eval.predictor import (
    AUTO,
    ModelImage,
    Prediction,
    Predictor,
    UnusableInput,
    answered,
    prompts,
    trained_crop,
)
from faceqa.eval.runner import MAX_EXAMPLES, RunStats, to_ask
from faceqa.finetune.crop import CropConfig
from faceqa.vlm.endpoint import file_data_url
from faceqa.vlm.recipe import recipe_of, resolve_style

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSettings:
    model: str  # checkpoint folder (or hub id) on every node
    name: str  # the served model's name (an endpoint run's --model); the cache adds the style, as such a run does
    style: str = "chat"  # prompts: chat (system prompt + question) or paligemma (bare prefix)
    replicas: int = 1  # vLLM engines (data parallel), each an actor with `tensor_parallel` GPUs
    tensor_parallel: int = 1
    batch_size: int = 64
    max_tokens: int = 64
    max_model_len: int = 2048
    lora: str | None = None  # a LoRA adapter folder applied to every request
    max_lora_rank: int = 16
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # anything else vLLM takes
    crop: CropConfig | None = None  # the face crop the adapter was trained on (None: the dataset's images as they are)
    jpeg_quality: int | None = None  # the build's JPEG quality of those crops (its recipe's; None: the default)
    croppers: int = 2  # Ray Data actors making the requests (cutting the crops)

    @property
    def cache_name(self) -> str:
        return cache_name(self.name, self.style, ModelImage(self.crop, self.jpeg_quality))

    @classmethod
    def for_adapter(cls, model: str, name: str, lora: str, crop: str = AUTO, **fields: Any) -> BatchSettings:
        """Settings that run LoRA `lora` on `model` as `faceqa eval run` would: its recipe's prompt style, the face
        crop its build made (`crop`, as `--crop`) and the build's JPEG quality; `fields` are any other settings."""
        recipe, architecture = recipe_of(lora)
        return cls(model=model, name=name, lora=lora, style=resolve_style(AUTO, recipe, architecture),
                   crop=trained_crop(crop, recipe), jpeg_quality=recipe.jpeg_quality if recipe else None, **fields)


class NotAnswered(RuntimeError):
    """A row the batch run has not answered yet."""


class BatchAnswers(Predictor):
    """The answers `predict_into_cache` cached, as a predictor for `evaluate`'s report and card: it asks nothing.

    A row missing from the cache is not guessed: it is reported as not answered (and not
    cached, so a later batch run still asks it).
    """

    def __init__(self, settings: BatchSettings):
        self.settings = settings
        self.name = settings.cache_name

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        raise NotAnswered(f"{item.key} [{task}]: not in the cache; run predict_into_cache first")

    def is_transient(self, error: Exception) -> bool:
        return isinstance(error, NotAnswered)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"name": s.name, "checkpoint": s.model, "adapter": s.lora, "prompt_style": s.style,
                "served_by": f"ray.data.llm, {s.replicas} vLLM engine(s) of {s.tensor_parallel} GPU(s)"}


def processor_config(settings: BatchSettings) -> Any:
    """`ray.data.llm.vLLMEngineProcessorConfig` for these settings (validated by its pydantic model)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    engine = {"max_model_len": settings.max_model_len, "tensor_parallel_size": settings.tensor_parallel,
              "limit_mm_per_prompt": {"image": 1}, **settings.engine_kwargs}
    if settings.lora:
        engine |= {"enable_lora": True, "max_lora_rank": settings.max_lora_rank, "max_loras": 1}
    return vLLMEngineProcessorConfig(
        model_source=settings.model, engine_kwargs=engine, batch_size=settings.batch_size,
        concurrency=settings.replicas, prepare_multimodal_stage={"enabled": True},
        chat_template_stage={"enabled": True}, tokenize_stage={"enabled": True}, detokenize_stage={"enabled": True},
        should_continue_on_error=True,  # one bad image costs its row, not the batch
    )


class Unusable:
    """A Ray actor holding the rows whose image could not be used, until the driver drains them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []

    def add(self, row: dict[str, str]) -> None:
        self.rows.append(row)

    def drain(self) -> list[dict[str, str]]:
        rows, self.rows = self.rows, []
        return rows


class Request:
    """Pre-processing (a Ray Data flat_map): a (path, task) row to the chat request vLLM's stages read.

    An unusable image makes no request: its row goes to `unusable` (an `Unusable` actor) with
    the reason, so the batch goes on without it. Without an actor (outside Ray) UnusableInput
    is raised.
    """

    def __init__(self, settings: BatchSettings, unusable: Any = None):
        self.prompts = prompts(settings.style)
        self.params = {"temperature": 0.0, "max_tokens": settings.max_tokens}
        self.lora = settings.lora
        self.image = ModelImage(settings.crop, settings.jpeg_quality)
        self.unusable = unusable

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        record = FaceRecord(Path(row["path"]), row["image"], "", None, {}, data=row["data"],
                            box=tuple(row["box"]) if row.get("box") is not None else None)
        try:
            url = file_data_url(self.image(record), row["path"])
        except UnusableInput as error:
            if self.unusable is None:
                raise
            # Waited for, so the driver's drain after the run sees it (bad images are few).
            import ray

            ray.get(self.unusable.add.remote({"image": row["image"], "task": row["task"], "error": str(error)}))
            return []
        request = {"image": row["image"], "task": row["task"], "sampling_params": self.params,
                   "messages": with_image(self.prompts[row["task"]], url)}
        return [request | ({"model": self.lora} if self.lora else {})]


class Answer:
    """Post-processing: vLLM's text read by the shared parser, as a prediction-cache line."""

    def __init__(self, settings: BatchSettings):
        self.name = settings.cache_name

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        entry = {"image": row["image"], "task": row["task"], "model": self.name}
        prediction = answered(row["task"], row.get("generated_text") or "", latency=0.0).to_dict()
        return {**entry, **prediction, "latency": None}  # batched: no per-request latency


def cache_line(row: dict[str, Any], name: str) -> dict[str, Any]:
    """A processor's output row as its cache line: Answer's, or the row vLLM failed (never its request or image)."""
    error = row.pop("__inference_error__", "")
    if not error:
        return row
    return {"image": row["image"], "task": row["task"], "model": name, "error": f"inference error: {error}",
            "error_kind": "failed"}


def build(settings: BatchSettings) -> Any:
    """The `ray.data.llm` processor: call it on a Dataset of `Request`s."""
    from ray.data.llm import build_processor

    return build_processor(processor_config(settings), postprocess=Answer(settings))


def predict_into_cache(items: Iterable[FaceRecord], tasks: Sequence[str], settings: BatchSettings,
                       cluster: RaySettings, cache: PredictionCache, retry_failed: bool = False,
                       processor: Callable[[BatchSettings], Any] = build) -> RunStats:
    """Ask every uncached (item, task) in batches on the cluster's GPUs, caching each answer or error.

    `processor` makes the Dataset-to-Dataset step (tests put a stand-in for the vLLM engine there).
    """
    ray = connect(cluster)
    stats = RunStats()
    unique: dict[str, FaceRecord] = {}
    for item in items:
        unique.setdefault(item.key, item)  # a row listed twice is asked once
    jobs = [(item, task) for item in unique.values() for task in tasks if task in item.labels]
    rows = [{"image": item.key, "task": task, "path": str(item.image), "data": item.data, "box": item.box}
            for item, task in jobs if to_ask(cache.get(item.key, task, settings.cache_name), retry_failed)]
    stats.jobs, stats.cached = len(jobs), len(jobs) - len(rows)
    if not rows:
        return stats
    name = settings.cache_name
    unusable = ray.remote(num_cpus=0)(Unusable).remote()
    requests = ray.data.from_items(rows).flat_map(Request, fn_constructor_args=(settings, unusable),
                                                  concurrency=settings.croppers)
    try:
        for row in processor(settings)(requests).iter_rows():
            line = cache_line(dict(row), name)
            cache.put(line)
            stats.calls += "error" not in line
            stats.errors += "error" in line
            if "error" in line and len(stats.failures) < MAX_EXAMPLES:
                stats.failures.append(f"{line['image']} [{line['task']}]: {line['error']}")
    finally:  # also on Ctrl-C: what the croppers found unusable so far is kept
        found = {(e["image"], e["task"]): e for e in ray.get(unusable.drain.remote())}  # a retried task adds again
        for entry in found.values():
            cache.put({**entry, "model": name, "error_kind": "unusable"})
        stats.unusable = len(found)
        ray.kill(unusable)
    if stats.errors:
        log.warning("%d rows failed in the engine, recorded as failed (retry_failed asks them again): %s",
                    stats.errors, stats.failures)
    return stats
