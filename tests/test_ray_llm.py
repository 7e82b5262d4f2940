"""Batched VLM evaluation through `ray.data.llm` (GPU path), checked without a GPU: the vLLM processor is built
and validated on a local Ray, and its pre/post-processing turn rows into requests and cache lines that score."""

from __future__ import annotations

import base64

import pydantic
import pytest

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.batch_llm import Answer, BatchSettings, Request, build, processor_config
from faceqa.eval.cache import PredictionCache
from faceqa.eval.evaluate import score
from faceqa.prompts import templates

SETTINGS = BatchSettings(model="/models/paligemma-faces", name="faces", style="paligemma", replicas=2,
                         tensor_parallel=2, batch_size=16, max_tokens=12, lora="/models/adapter", max_lora_rank=8)


def test_the_vllm_processor_config_carries_parallelism_lora_and_image_limits():
    config = processor_config(SETTINGS)
    assert config.model_source == "/models/paligemma-faces" and config.concurrency == 2 and config.batch_size == 16
    assert config.engine_kwargs.items() >= {"tensor_parallel_size": 2, "enable_lora": True, "max_lora_rank": 8,
                                            "max_loras": 1, "max_model_len": 2048}.items()
    assert config.engine_kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert config.should_continue_on_error
    assert "enable_lora" not in processor_config(BatchSettings(model="m", name="m")).engine_kwargs
    with pytest.raises(pydantic.ValidationError):
        processor_config(BatchSettings(model="m", name="m", replicas=0))


def test_the_processor_builds_on_ray_with_a_gpu_engine_stage(ray_local):
    processor = build(SETTINGS)
    assert list(processor.stages) == ["PrepareMultimodalStage", "ChatTemplateStage", "TokenizeStage",
                                      "vLLMEngineStage", "DetokenizeStage"]
    engine = processor.stages["vLLMEngineStage"]
    assert engine.fn_constructor_kwargs["engine_kwargs"]["distributed_executor_backend"] == "ray"  # tp 2
    assert engine.fn_constructor_kwargs["model"] == "/models/paligemma-faces"


def test_rows_become_requests_and_answers_become_cache_lines_that_score(examples, tmp_path):
    path = examples / "obama.jpg"
    row = {"image": "ex:obama.jpg", "task": "gender", "path": str(path), "data": None}
    request = Request(SETTINGS)(row)
    (user,) = request["messages"]  # paligemma style: no system prompt
    image, text = user["content"]
    assert base64.b64decode(image["image_url"]["url"].split(",", 1)[1]) == path.read_bytes()
    assert text == {"type": "text", "text": templates.question("gender", "paligemma")}
    assert request["sampling_params"] == {"temperature": 0.0, "max_tokens": 12}
    assert request["model"] == "/models/adapter"
    assert Request(SETTINGS)({**row, "data": b"inline"})["messages"][0]["content"][0]["image_url"]["url"].endswith(
        base64.b64encode(b"inline").decode())

    answer = Answer(SETTINGS)
    lines = [answer({**request, "generated_text": "male"}),
             answer({**request, "image": "ex:other", "generated_text": "a cat"}),
             answer({**request, "image": "ex:broken", "__inference_error__": "CUDA out of memory"})]
    assert lines[0]["label"] == "Male" and lines[1]["label"] is None and lines[1]["reason"]
    assert lines[2]["label"] is None and "CUDA out of memory" in lines[2]["reason"]
    items = [FaceRecord(path, key, "ex", "val", {"gender": "Male"}) for key in ("ex:obama.jpg", "ex:other",
                                                                              "ex:broken")]
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        for line in lines:
            cache.put(line)
    with PredictionCache(tmp_path / "p.jsonl") as cache:  # as a rerun or `evaluate` reads them
        rows, unusable = score(items, ["gender"], cache, "faces[paligemma]")  # as --prompt-style paligemma
    assert [(r.image, r.pred, r.correct) for r in rows] == [("ex:obama.jpg", "Male", True), ("ex:other", None, False),
                                                           ("ex:broken", None, False)]
    assert unusable == []
