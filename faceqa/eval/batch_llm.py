"""Batched offline VLM evaluation on GPUs: Ray Data's vLLM integration (`ray.data.llm`) into the evaluator's cache.

    (item, task) rows not yet cached -> ray.data.from_items -> request (image as a data URL,
      the task's question from faceqa.prompts, greedy) -> PrepareMultimodal -> ChatTemplate
      -> Tokenize -> vLLM engine (`replicas` copies, each on `tensor_parallel` GPUs)
      -> Detokenize -> answer (the shared parser) -> one prediction-cache line per row

The cache lines are those an endpoint run writes, under the same model name, so
`evaluate` (or `faceqa eval run --endpoint URL --model NAME` on the same cache) scores
and reports them like any other run, and a rerun skips what is cached. Lines are
written as rows come back; rows still inside the engine when the driver stops are
asked again (batch-granular resumption, unlike the call-granular runner).

On the GPU machines: `pip install 'ray[llm]==2.60.0'` (it brings its own vLLM). The
model folder (and LoRA adapter) must be readable on every node. Not run here (no GPU):
the tests build and validate the processor and run its pre- and post-processing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceqa.cluster import RaySettings, connect
from faceqa.datasets.readers import FaceRecord
from faceqa.eval.cache import PredictionCache
from faceqa.eval.openai_predictor import cache_name, with_image
from faceqa.eval.predictor import ModelImage, answered, prompts
from faceqa.finetune.crop import CropConfig
from faceqa.vlm.endpoint import file_data_url


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

    @property
    def cache_name(self) -> str:
        return cache_name(self.name, self.style, ModelImage(self.crop, self.jpeg_quality))


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


class Request:
    """Pre-processing (a Ray Data map): a (path, task) row to the chat request vLLM's stages read."""

    def __init__(self, settings: BatchSettings):
        self.prompts = prompts(settings.style)
        self.params = {"temperature": 0.0, "max_tokens": settings.max_tokens}
        self.lora = settings.lora
        self.image = ModelImage(settings.crop, settings.jpeg_quality)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        record = FaceRecord(Path(row["path"]), row["image"], "", None, {}, data=row["data"],
                            box=tuple(row["box"]) if row.get("box") is not None else None)
        url = file_data_url(self.image(record), row["path"])
        request = {"image": row["image"], "task": row["task"], "sampling_params": self.params,
                   "messages": with_image(self.prompts[row["task"]], url)}
        return request | ({"model": self.lora} if self.lora else {})


class Answer:
    """Post-processing: vLLM's text read by the shared parser, as a prediction-cache line."""

    def __init__(self, settings: BatchSettings):
        self.name = settings.cache_name

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        entry = {"image": row["image"], "task": row["task"], "model": self.name}
        if row.get("__inference_error__"):
            return {**entry, "label": None, "latency": None, "text": None, "years": None,
                    "reason": f"inference error: {row['__inference_error__']}"}
        prediction = answered(row["task"], row.get("generated_text") or "", latency=0.0).to_dict()
        return {**entry, **prediction, "latency": None}  # batched: no per-request latency


def build(settings: BatchSettings) -> Any:
    """The `ray.data.llm` processor: call it on a Dataset of (image key, task, path, data) rows."""
    from ray.data.llm import build_processor

    return build_processor(processor_config(settings), preprocess=Request(settings), postprocess=Answer(settings))


def predict_into_cache(items: Iterable[FaceRecord], tasks: Sequence[str], settings: BatchSettings,
                       cluster: RaySettings, cache: PredictionCache) -> int:
    """Ask every uncached (item, task) in batches on the cluster's GPUs; returns how many lines were written."""
    ray = connect(cluster)
    unique: dict[str, FaceRecord] = {}
    for item in items:
        unique.setdefault(item.key, item)  # a row listed twice is asked once
    rows = [{"image": item.key, "task": task, "path": str(item.image), "data": item.data, "box": item.box}
            for item in unique.values() for task in tasks
            if task in item.labels and (item.key, task, settings.cache_name) not in cache]
    if not rows:
        return 0
    written = 0
    for entry in build(settings)(ray.data.from_items(rows)).iter_rows():
        cache.put(entry)
        written += 1
    return written
