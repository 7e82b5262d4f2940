"""Runs a predictor over (item, task) jobs on a thread pool, recording each answer as it arrives.

Workers write to the cache themselves, so on Ctrl-C the calls already in flight are
still saved and a resumed run repeats none of them. What goes wrong is told apart by
who is at fault:

- the call (`predictor.is_transient`: timeout, refused connection, a 5xx): not cached,
  reported, retried by the next run;
- the input: `UnusableInput` (unreadable image, missing file) is cached with
  `error_kind: unusable`, never retried; any other error this input raised is cached
  with `error_kind: failed`, so it is not retried on every run forever, and
  `retry_failed` (`eval run --retry-failed`) tries those again.

Both kinds are kept out of the metrics. A row seen twice (same image key) is asked once.
Jobs go to the predictor in batches (`Predictor.batching`: one job each, as many at once
as the concurrency, unless the predictor says otherwise) and each batch's answers are
cached when it returns. The predictor may run anywhere: `RayPredictor` sends a batch per
request to a Ray actor, so the same loop, cache and report serve a distributed run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from tqdm import tqdm

from faceqa.datasets.readers import FaceRecord
from faceqa.eval.cache import PredictionCache
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput
from faceqa.eval.ray_predictor import RemoteFailure

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 25
MAX_EXAMPLES = 5


class EndpointFailing(RuntimeError):
    """Every recent call failed; stopping is cheaper than failing the remaining thousands one by one."""


@dataclass
class RunStats:
    jobs: int = 0
    cached: int = 0
    calls: int = 0
    failed: int = 0  # transient failures: not cached, retried next run
    errors: int = 0  # input errors cached as failed (retried with retry_failed)
    unusable: int = 0
    wall_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "skipped"}, "skipped": dict(self.skipped)}


def plan_jobs(items: Iterable[FaceRecord], tasks: Sequence[str], predictor: Predictor,
              stats: RunStats) -> list[tuple[FaceRecord, str]]:
    """Every (item, task) that has a ground-truth label and that the predictor can answer, once."""
    jobs, seen = [], set()
    for item in items:
        for task in tasks:
            if (item.key, task) in seen:
                stats.skipped["duplicate row"] += 1
            elif task not in item.labels:
                stats.skipped[f"{task}: no ground truth"] += 1
            elif task not in predictor.tasks:
                stats.skipped[f"{task}: not answered by {predictor.name}"] += 1
            else:
                seen.add((item.key, task))
                jobs.append((item, task))
    return jobs


def to_ask(entry: dict | None, retry_failed: bool) -> bool:
    """Whether a job whose cache line is `entry` is asked (again): not cached, or failed and `retry_failed`."""
    return entry is None or (retry_failed and entry.get("error_kind") == "failed")


def _batches(jobs: list[tuple[FaceRecord, str]], size: int) -> Iterator[list[tuple[FaceRecord, str]]]:
    """Consecutive jobs, about `size` per batch, the tasks of one image never split (one actor analyses it once)."""
    batch: list[tuple[FaceRecord, str]] = []
    for job in jobs:
        if len(batch) >= size and batch[-1][0].key != job[0].key:
            yield batch
            batch = []
        batch.append(job)
    if batch:
        yield batch


def run_predictions(items: Iterable[FaceRecord], tasks: Sequence[str], predictor: Predictor,
                    cache: PredictionCache, concurrency: int = 1, progress: bool = True,
                    retry_failed: bool = False) -> RunStats:
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    stats = RunStats()
    started = time.perf_counter()
    jobs = plan_jobs(items, tasks, predictor, stats)
    stats.jobs = len(jobs)
    todo = [(item, task) for item, task in jobs if to_ask(cache.get(item.key, task, predictor.name), retry_failed)]
    stats.cached = len(jobs) - len(todo)
    lock = threading.Lock()
    consecutive = 0
    last_failure = ""

    def record(item: FaceRecord, task: str, outcome: Prediction | Exception) -> None:
        nonlocal consecutive, last_failure
        entry = {"image": item.key, "task": task, "model": predictor.name}
        if isinstance(outcome, UnusableInput):
            cache.put({**entry, "error": str(outcome), "error_kind": "unusable"})
            with lock:
                stats.unusable += 1
            return
        if isinstance(outcome, Exception):
            transient = predictor.is_transient(outcome)
            text = str(outcome) if isinstance(outcome, RemoteFailure) else f"{type(outcome).__name__}: {outcome}"
            if not transient:  # this input's own error: recorded, so the next run does not ask again
                cache.put({**entry, "error": text, "error_kind": "failed"})
            with lock:
                stats.failed += transient
                stats.errors += not transient
                consecutive += 1
                last_failure = f"{item.key} [{task}]: {text}"
                if len(stats.failures) < MAX_EXAMPLES:
                    stats.failures.append(last_failure)
            return
        cache.put({**entry, **outcome.to_dict()})
        with lock:
            stats.calls += 1
            consecutive = 0

    def work(batch: list[tuple[FaceRecord, str]]) -> None:
        for (item, task), outcome in zip(batch, predictor.predict_batch(batch), strict=True):
            record(item, task, outcome)

    size, slots = predictor.batching(concurrency)
    bar = tqdm(total=len(todo), unit="call", desc=predictor.name, disable=not progress, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="faceqa-eval")
    pending: dict[Future, int] = {}
    queue = _batches(todo, size)
    try:
        while True:
            while len(pending) < 2 * slots and (batch := next(queue, None)) is not None:
                pending[pool.submit(work, batch)] = len(batch)
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            bar.update(sum(pending.pop(future) for future in done))
            if consecutive >= MAX_CONSECUTIVE_FAILURES:
                raise EndpointFailing(f"{consecutive} calls in a row failed; last: {last_failure}")
    finally:
        # On Ctrl-C or a failing endpoint: drop queued jobs, let in-flight calls finish and be cached.
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        stats.wall_seconds = time.perf_counter() - started
    if stats.failed:
        log.warning("%d calls failed and were not cached (re-run to retry): %s", stats.failed, stats.failures)
    if stats.errors:
        log.warning("%d inputs raised an error, recorded as failed (--retry-failed tries them again): %s",
                    stats.errors, stats.failures)
    return stats
