"""Batched VLM evaluation through `ray.data.llm` (GPU path), checked without a GPU: the vLLM processor is built
and validated on a local Ray, and its pre/post-processing turn rows into requests and cache lines that score."""

from __future__ import annotations

import base64
import io
import json

import pydantic
import pytest
from PIL import Image

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.batch_llm import (
    Answer,
    BatchAnswers,
    BatchSettings,
    Request,
    build,
    predict_into_cache,
    processor_config,
)
from faceqa.eval.cache import PredictionCache
from faceqa.eval.evaluate import EvalConfig, evaluate, score
from faceqa.eval.predictor import UnusableInput
from faceqa.finetune.crop import CropConfig
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
    (request,) = Request(SETTINGS)(row)
    (user,) = request["messages"]  # paligemma style: no system prompt
    image, text = user["content"]
    assert base64.b64decode(image["image_url"]["url"].split(",", 1)[1]) == path.read_bytes()
    assert text == {"type": "text", "text": templates.question("gender", "paligemma")}
    assert request["sampling_params"] == {"temperature": 0.0, "max_tokens": 12}
    assert request["model"] == "/models/adapter"
    (inline,) = Request(SETTINGS)({**row, "data": b"inline"})
    with pytest.raises(UnusableInput, match="empty file"):  # outside Ray, with no actor to report to
        Request(SETTINGS)({**row, "data": b""})
    assert inline["messages"][0]["content"][0]["image_url"]["url"].endswith(base64.b64encode(b"inline").decode())

    answer = Answer(SETTINGS)
    lines = [answer({**request, "generated_text": "male"}),
             answer({**request, "image": "ex:other", "generated_text": "a cat"})]
    assert lines[0]["label"] == "Male" and lines[1]["label"] is None and lines[1]["reason"]
    items = [FaceRecord(path, key, "ex", "val", {"gender": "Male"}) for key in ("ex:obama.jpg", "ex:other")]
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        for line in lines:
            cache.put(line)
    with PredictionCache(tmp_path / "p.jsonl") as cache:  # as a rerun or `evaluate` reads them
        rows, unusable = score(items, ["gender"], cache, "faces[paligemma]")  # as --prompt-style paligemma
    assert [(r.image, r.pred, r.correct) for r in rows] == [("ex:obama.jpg", "Male", True), ("ex:other", None, False)]
    assert unusable == []


def _standin_engine(settings: BatchSettings):
    """vLLM's place in the processor: "male" for every request, a failure for Grace Hopper's, as
    `should_continue_on_error` makes one; rows leave through ray.data.llm's own postprocess wrapper
    (which hands a failed row back as its data, request and image included, past `Answer`)."""
    from ray.llm._internal.batch.stages.base import wrap_postprocess, wrap_preprocess

    def engine(row: dict) -> dict:
        failed = "grace" in row["__data"]["image"]
        return {"__data": {**row["__data"], "generated_text": "" if failed else "male",
                           "__inference_error__": "ValueError: the prompt is too long" if failed else ""}}

    preprocess = wrap_preprocess(lambda row: row, "__data")
    postprocess = wrap_postprocess(Answer(settings), "__data", include_error_column=True)
    return lambda requests: requests.map(preprocess).map(engine).map(postprocess)


def test_settings_for_an_adapter_show_it_what_its_recipe_records_as_eval_run_does(tmp_path):
    from faceqa.vlm.recipe import Recipe

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    recipe = Recipe("/models/base", "paligemma", "paligemma", "image", 96, 0.3, crop_mode="detect", jpeg_quality=60)
    recipe.save(adapter)
    settings = BatchSettings.for_adapter("/models/base", "faces", str(adapter), replicas=4)
    assert (settings.style, settings.crop, settings.jpeg_quality, settings.replicas) == (
        "paligemma", CropConfig(mode="detect", margin=0.3, size=96), 60, 4)
    assert BatchSettings.for_adapter("/models/base", "faces", str(adapter), crop="trust").crop == CropConfig(
        mode="trust", margin=0.3, size=96)
    assert BatchSettings.for_adapter("/models/base", "faces", str(adapter), crop="as-is").crop is None
    plain = BatchSettings.for_adapter("/models/base", "faces", str(tmp_path / "no-recipe"))
    assert (plain.style, plain.crop, plain.jpeg_quality) == ("chat", None, None)  # as eval run without a recipe
    with pytest.raises(ValueError, match="--crop must be"):
        BatchSettings.for_adapter("/models/base", "faces", str(adapter), crop="squash")


def test_one_unusable_image_or_failed_row_costs_its_row_not_the_batch(ray_local, examples, tmp_path):
    settings = BatchSettings(model="/models/paligemma-faces", name="faces", style="paligemma", lora="/models/adapter",
                             crop=CropConfig(mode="detect"), croppers=1)
    blank = io.BytesIO()
    Image.new("RGB", (96, 96), (128, 128, 128)).save(blank, format="PNG")
    items = [FaceRecord(examples / "obama.jpg", "ex:obama", "ex", "val", {"gender": "Male"}),
             FaceRecord(examples / "obama.jpg", "ex:broken", "ex", "val", {"gender": "Male"}, data=b"not a jpeg"),
             FaceRecord(examples / "obama.jpg", "ex:blank", "ex", "val", {"gender": "Male"}, data=blank.getvalue()),
             FaceRecord(examples / "grace_hopper.jpg", "ex:grace", "ex", "val", {"gender": "Female"})]
    path = tmp_path / "predictions.jsonl"
    with PredictionCache(path) as cache:
        stats = predict_into_cache(items, ["gender"], settings, ray_local, cache, processor=_standin_engine)
    assert (stats.jobs, stats.calls, stats.errors, stats.unusable) == (4, 1, 1, 2)
    lines = {line["image"]: line for line in map(json.loads, path.read_text().splitlines())}
    assert set(lines) == {"ex:obama", "ex:broken", "ex:blank", "ex:grace"}
    assert all(line["model"] == settings.cache_name for line in lines.values())
    assert lines["ex:obama"]["label"] == "Male"
    assert lines["ex:broken"]["error_kind"] == lines["ex:blank"]["error_kind"] == "unusable"
    assert "no face detected" in lines["ex:blank"]["error"] and lines["ex:broken"]["error"].startswith("ex:broken")
    assert lines["ex:grace"]["error_kind"] == "failed" and "prompt is too long" in lines["ex:grace"]["error"]
    assert "data:image" not in path.read_text()  # a failed row's request and image are not written down

    with PredictionCache(path) as cache:  # scored as every run's cache is: the three kept out of the metrics
        rows, unusable = score(items, ["gender"], cache, settings.cache_name)
        assert [(r.image, r.correct) for r in rows] == [("ex:obama", True)]
        assert sorted(u["image"] for u in unusable) == ["ex:blank", "ex:broken", "ex:grace"]
        again = predict_into_cache(items, ["gender"], settings, ray_local, cache, processor=_standin_engine)
        assert (again.cached, again.calls + again.errors + again.unusable) == (4, 0)  # nothing asked twice
        retried = predict_into_cache(items, ["gender"], settings, ray_local, cache, retry_failed=True,
                                     processor=_standin_engine)
        assert (retried.cached, retried.errors) == (3, 1)  # only the failed row is asked again

    # The report and card of the batch run, from the cache alone: every row is there, so nothing is asked.
    report = evaluate(items, BatchAnswers(settings), tmp_path / "report", EvalConfig(tasks=("gender",), plots=False,
                                                                                   progress=False),
                      cache_path=path)
    assert report["tasks"]["gender"]["n"] == 1 and report["unusable_inputs"]["count"] == 3
    assert report["model"]["checkpoint"] == settings.model and report["run"]["calls"] == 0
    assert "faces" in (tmp_path / "report/model_card.md").read_text()
    missing = FaceRecord(examples / "obama.jpg", "ex:new", "ex", "val", {"gender": "Male"})
    again = evaluate([*items, missing], BatchAnswers(settings), tmp_path / "report", EvalConfig(
        tasks=("gender",), plots=False, progress=False), cache_path=path)
    assert again["run"]["failures"] and "not in the cache" in again["run"]["failures"][0]
    assert "ex:new" not in path.read_text()  # not answered, not recorded: a later batch run asks it
