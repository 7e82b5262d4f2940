"""`eval run --ray`: predictions on Ray actors score exactly as on one machine, resume without repeating a call,
and an input's own error is recorded once."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import pytest
import ray.cloudpickle
from eval_standin import StandIn
from test_eval_e2e import answerer, fairface_fixture

from faceqa.datasets.readers import FaceRecord, read_fairface
from faceqa.eval import runner
from faceqa.eval.cache import PredictionCache
from faceqa.eval.engine_predictor import EngineVsLabels
from faceqa.eval.evaluate import EvalConfig, evaluate
from faceqa.eval.openai_predictor import OpenAIEndpointPredictor
from faceqa.eval.predictor import Prediction, Predictor
from faceqa.eval.ray_predictor import RayPredictor
from faceqa.eval.runner import run_predictions

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this module's predictors, on the actors


def _timeless(value):
    """A report or scored row without what the clock decides (latencies, wall time)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items()
                if "latency" not in k and k not in ("wall_seconds", "run", "plots", "model")}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _scored(out: Path) -> list[dict]:
    return [_timeless(json.loads(line)) for line in (out / "scored.jsonl").read_text().splitlines()]


CONFIG = EvalConfig(tasks=("gender", "age_group", "emotion"), concurrency=2, bootstrap=50, plots=False,
                    progress=False)


def test_engine_predictions_on_ray_actors_score_exactly_as_in_this_process(examples, engine, ray_local, tmp_path):
    labels = {"astronaut.png": ("Female", "30-39", "Happiness"), "obama.jpg": ("Male", "40-49", "Happiness"),
              "grace_hopper.jpg": ("Female", "70+", "Neutral"), "group.jpg": ("Male", "30-39", "Happiness")}
    items = [FaceRecord(examples / name, f"ex:{name}", "ex", "val",
                        dict(zip(("gender", "age_group", "emotion"), truth, strict=True)))
             for name, truth in labels.items()]
    items.append(items[1])  # a row listed twice is predicted and scored once
    local = evaluate(items, EngineVsLabels(engine), tmp_path / "local", CONFIG)
    remote = RayPredictor(EngineVsLabels, ray_local, concurrency=2)
    try:
        distributed = evaluate(items, remote, tmp_path / "ray", CONFIG)
    finally:
        remote.close()
    assert distributed["run"]["calls"] == local["run"]["calls"] == 12
    assert distributed["dataset"]["duplicate_rows"] == 1
    assert _scored(tmp_path / "ray") == _scored(tmp_path / "local")
    assert [r["pred"] for r in _scored(tmp_path / "ray")].count(None) < 12  # the engine really answered
    assert _timeless(distributed) == _timeless(local)
    assert distributed["model"]["ray"]["actors"] == 2


class StopAfter(runner.tqdm):
    """The runner's progress bar, raising Ctrl-C once `limit` answers are in: a deterministic interruption."""

    limit = 10
    answers = 0

    def update(self, n=1):
        super().update(n)
        self.answers += n  # counted here: a disabled bar does not count
        if self.answers >= self.limit:
            raise KeyboardInterrupt


def test_an_interrupted_ray_eval_resumes_without_repeating_a_call(ray_local, tmp_path, monkeypatch):
    truth = fairface_fixture(tmp_path / "ff", 40)
    items = list(read_fairface(tmp_path / "ff", splits=("val",)))
    config = EvalConfig(tasks=("race", "gender", "age_group"), concurrency=4, bootstrap=50, plots=False,
                        progress=False)
    with StandIn(answerer(truth)) as reference:
        local = evaluate(items, OpenAIEndpointPredictor(reference.base_url, "standin"), tmp_path / "local", config)
    with StandIn(answerer(truth)) as server:
        factory = partial(OpenAIEndpointPredictor, server.base_url, "standin")
        monkeypatch.setattr(runner, "tqdm", StopAfter)
        remote = RayPredictor(factory, ray_local, concurrency=4)
        with pytest.raises(KeyboardInterrupt):
            evaluate(items, remote, tmp_path / "ray", config)
        saved = len((tmp_path / "ray" / "predictions.jsonl").read_text().splitlines())
        assert StopAfter.limit <= saved < 120 and server.requests == saved  # calls in flight were saved too
        monkeypatch.undo()
        resumed = evaluate(items, remote, tmp_path / "ray", config)
        remote.close()
        assert set(server.hits.values()) == {1} and server.requests == 120
    assert resumed["run"]["cached"] == saved and resumed["run"]["calls"] == 120 - saved
    assert _scored(tmp_path / "ray") == _scored(tmp_path / "local")
    assert _timeless(resumed) == _timeless(local)


class Flaky(Predictor):
    """Raises a non-image error for one item; logs every call to a file the test reads."""

    name = "flaky"

    def __init__(self, log: str, bad: str):
        self.log, self.bad = log, bad

    def predict(self, item, task):
        with open(self.log, "a") as handle:
            handle.write(item.key + "\n")
        if item.key == self.bad:
            raise ValueError("this row breaks the model")
        return Prediction("Male", 0.0)


def test_an_input_error_on_an_actor_is_recorded_once_and_retried_on_request(ray_local, tmp_path):
    calls = tmp_path / "calls.txt"
    items = [FaceRecord(Path(f"/nowhere/{i}.jpg"), f"t:{i}", "t", "val", {"gender": "Male"}) for i in range(6)]
    remote = RayPredictor(partial(Flaky, str(calls), "t:3"), ray_local, concurrency=2)
    try:
        for retry_failed in (False, False, True):
            with PredictionCache(tmp_path / "p.jsonl") as cache:
                stats = run_predictions(items, ["gender"], remote, cache, concurrency=2, progress=False,
                                        retry_failed=retry_failed)
                entry = cache.get("t:3", "gender", "flaky")
            assert entry == {"image": "t:3", "task": "gender", "model": "flaky", "error_kind": "failed",
                             "error": "ValueError: this row breaks the model"}
    finally:
        remote.close()
    assert stats.errors == 1 and stats.calls == 0
    assert sorted(calls.read_text().split()) == sorted([f"t:{i}" for i in range(6)] + ["t:3"])



class WhichProcess(Predictor):
    """Answers with the id of the process that answered."""

    name = "which-process"

    def predict(self, item, task):
        import os

        return Prediction("Male", 0.0, text=str(os.getpid()))


def test_ray_requests_carry_several_calls_and_one_actor_answers_every_task_of_an_image(ray_local, tmp_path,
                                                                                      monkeypatch):
    items = [FaceRecord(Path(f"/nowhere/{i}.jpg"), f"t:{i}", "t", "val", {"gender": "Male", "emotion": "Neutral"})
             for i in range(40)]
    sizes = []
    real = RayPredictor.predict_batch

    def counted(self, jobs):
        sizes.append(len(jobs))
        return real(self, jobs)

    monkeypatch.setattr(RayPredictor, "predict_batch", counted)
    remote = RayPredictor(WhichProcess, ray_local, concurrency=4)
    try:
        with PredictionCache(tmp_path / "p.jsonl") as cache:
            stats = run_predictions(items, ["gender", "emotion"], remote, cache, concurrency=4, progress=False)
            answered_by = {key: {cache.get(key, task, "which-process")["text"] for task in ("gender", "emotion")}
                           for key in (item.key for item in items)}
    finally:
        remote.close()
    assert stats.calls == 80 and sum(sizes) == 80
    assert max(sizes) > 1 and len(sizes) < 80  # requests, not calls, cross to the actors
    assert all(len(pids) == 1 for pids in answered_by.values())  # the engine would analyse each image once
    assert str(__import__("os").getpid()) not in set().union(*answered_by.values())  # answered on actors


def test_ray_actors_share_out_the_concurrency_so_no_more_calls_run_at_once_than_asked(ray_local):
    for concurrency, shares in ((3, [2, 1]), (1, [1])):
        remote = RayPredictor(WhichProcess, ray_local, concurrency=concurrency)
        try:
            assert remote.describe()["ray"]["calls_per_actor"] == shares
            assert remote.describe()["ray"]["actors"] == len(shares)
        finally:
            remote.close()
