"""Prediction cache and runner: resumption without repeated calls, torn lines, failures, concurrency."""

import json
import threading
from pathlib import Path

import pytest

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.cache import PredictionCache
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput
from faceqa.eval.runner import EndpointFailing, run_predictions


def items(n):
    return [FaceRecord(Path(f"/nowhere/{i}.jpg"), f"t:{i}.jpg", "t", "val",
                       {"gender": "Male" if i % 2 else "Female", "emotion": "Neutral"}) for i in range(n)]


class Counting(Predictor):
    name = "counting"

    def __init__(self, fail=(), unusable=()):
        self.calls, self.fail, self.unusable = [], set(fail), set(unusable)
        self.lock = threading.Lock()

    def predict(self, item, task):
        with self.lock:
            self.calls.append((item.key, task))
        if item.key in self.unusable:
            raise UnusableInput("unreadable")
        if item.key in self.fail:
            raise ConnectionError("refused")
        return Prediction("Male", 0.01, text="Male")


def test_resume_makes_no_repeated_calls(tmp_path):
    data = items(10)
    first = Counting()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(data[:4], ["gender"], first, cache, progress=False)
    assert stats.calls == 4
    second = Counting()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(data, ["gender", "emotion"], second, cache, concurrency=3, progress=False)
    assert stats.cached == 4 and stats.calls == 16
    assert not set(first.calls) & set(second.calls)
    assert len(second.calls) == len(set(second.calls)) == 16


def test_torn_last_line_is_dropped_and_appends_stay_valid(tmp_path):
    path = tmp_path / "p.jsonl"
    with PredictionCache(path) as cache:
        cache.put({"image": "a", "task": "gender", "model": "m", "label": "Male"})
        cache.put({"image": "b", "task": "gender", "model": "m", "label": "Female"})
    with path.open("a") as handle:
        handle.write('{"image": "c", "task": "gen')  # killed mid-write
    with PredictionCache(path) as cache:
        assert len(cache) == 2 and cache.get("c", "gender", "m") is None
        cache.put({"image": "c", "task": "gender", "model": "m", "label": "Male"})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["image"] for line in lines] == ["a", "b", "c"]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"image": "a", "task": "gender", "model": "m", "label": "Male"}')
    with PredictionCache(path) as cache:
        assert cache.get("a", "gender", "m")["label"] == "Male"
        cache.put({"image": "b", "task": "gender", "model": "m", "label": "Male"})
    assert len(path.read_text().splitlines()) == 2


def test_corrupt_middle_line_is_a_clear_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('garbage\n{"image": "a", "task": "gender", "model": "m"}\n')
    with pytest.raises(ValueError, match="corrupt line"):
        PredictionCache(path)


def test_failed_calls_are_retried_and_unusable_inputs_are_not(tmp_path):
    data = items(6)
    predictor = Counting(fail={"t:1.jpg"}, unusable={"t:2.jpg"})
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(data, ["gender"], predictor, cache, progress=False)
    assert (stats.calls, stats.failed, stats.unusable) == (4, 1, 1)
    assert "ConnectionError" in stats.failures[0]
    again = Counting()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(data, ["gender"], again, cache, progress=False)
        assert cache.get("t:2.jpg", "gender", "counting")["error"] == "unreadable"
    assert again.calls == [("t:1.jpg", "gender")]


def test_unsupported_tasks_and_missing_truth_are_counted_not_called(tmp_path):
    predictor = Counting()
    predictor.tasks = ("gender",)
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(items(3), ["gender", "emotion", "race"], predictor, cache, progress=False)
    assert stats.calls == 3
    assert stats.skipped == {"emotion: not answered by counting": 3, "race: no ground truth": 3}


def test_a_dead_endpoint_stops_the_run(tmp_path):
    data = items(100)
    predictor = Counting(fail={i.key for i in data})
    with PredictionCache(tmp_path / "p.jsonl") as cache, pytest.raises(EndpointFailing, match="in a row failed"):
        run_predictions(data, ["gender"], predictor, cache, concurrency=2, progress=False)
    assert len(predictor.calls) < 40


def test_concurrency_really_overlaps_calls(tmp_path):
    barrier = threading.Barrier(8, timeout=10)

    class Meeting(Counting):
        def predict(self, item, task):
            barrier.wait()  # only returns once 8 calls are in flight at the same time
            return super().predict(item, task)

    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(items(16), ["gender"], Meeting(), cache, concurrency=8, progress=False)
    assert stats.calls == 16 and stats.failed == 0


def test_a_row_listed_twice_is_asked_once(tmp_path):
    data = items(3)
    predictor = Counting()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions([*data, data[1]], ["gender"], predictor, cache, progress=False)
    assert sorted(predictor.calls) == sorted((i.key, "gender") for i in data)
    assert stats.skipped["duplicate row"] == 1


def test_a_row_listed_twice_is_scored_once(tmp_path):
    from faceqa.eval.evaluate import EvalConfig, evaluate

    data = items(6)
    report = evaluate([*data, *data[:2]], Counting(), tmp_path / "run",
                      EvalConfig(tasks=("gender",), bootstrap=10, plots=False, progress=False))
    assert report["tasks"]["gender"]["n"] == 6 and report["dataset"]["duplicate_rows"] == 2


class Broken(Counting):
    def predict(self, item, task):
        super().predict(item, task)
        if item.key == "t:2.jpg":
            raise KeyError("a field this row lacks")
        return Prediction("Male", 0.01)


def test_an_input_error_is_recorded_as_failed_not_retried_forever_and_retried_on_request(tmp_path):
    data = items(4)
    first = Broken()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(data, ["gender"], first, cache, progress=False)
    assert (stats.calls, stats.errors, stats.failed) == (3, 1, 0)
    second = Broken()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        run_predictions(data, ["gender"], second, cache, progress=False)
        assert cache.get("t:2.jpg", "gender", "counting")["error_kind"] == "failed"
    assert second.calls == []
    third = Broken()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        run_predictions(data, ["gender"], third, cache, progress=False, retry_failed=True)
    assert third.calls == [("t:2.jpg", "gender")]


def test_a_cache_line_without_a_label_is_asked_again_not_counted_unanswered(tmp_path):
    from faceqa.eval.evaluate import score

    path = tmp_path / "p.jsonl"
    path.write_text('{"image": "t:0.jpg", "task": "gender", "model": "counting", "latency": 0.1}\n'
                    '{"image": "t:1.jpg", "task": "gender", "model": "counting", "label": "Male"}\n')
    predictor = Counting()
    with PredictionCache(path) as cache:
        assert cache.get("t:0.jpg", "gender", "counting") is None
        run_predictions(items(2), ["gender"], predictor, cache, progress=False)
        rows, _ = score(items(2), ["gender"], cache, "counting")
    assert predictor.calls == [("t:0.jpg", "gender")]
    assert [row.pred for row in rows] == ["Male", "Male"]
    with PredictionCache(path) as cache:  # the new answer wins over the old line on the next load too
        assert cache.get("t:0.jpg", "gender", "counting")["label"] == "Male"


class Batching(Counting):
    """Takes five jobs per call, two calls at once, and records every batch it is given."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def batching(self, concurrency):
        return 5, 2

    def predict_batch(self, jobs):
        with self.lock:
            self.batches.append([(item.key, task) for item, task in jobs])
        return super().predict_batch(jobs)


def test_a_batching_predictor_gets_whole_images_in_batches_and_every_answer_is_cached(tmp_path):
    predictor = Batching()
    with PredictionCache(tmp_path / "p.jsonl") as cache:
        stats = run_predictions(items(7), ["gender", "emotion"], predictor, cache, concurrency=4, progress=False)
    assert stats.calls == 14 and len(cache) == 14
    assert sorted(job for batch in predictor.batches for job in batch) == sorted(predictor.calls)
    assert [len(batch) for batch in predictor.batches] == [6, 6, 2]  # 5 asked for, an image's tasks never split
    assert all(len({key for key, _ in batch}) == len(batch) // 2 for batch in predictor.batches)
