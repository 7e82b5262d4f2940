"""`eval run --ray`: a predictor whose calls run on Ray actors, behind the same runner, cache and report.

    runner threads (IN_FLIGHT per actor) -> RayPredictor.predict_batch (BATCH rounds of
      calls per request) -> the least busy actor -> its share of `concurrency` threads
      -> its own predictor, built once by `factory` (the engine's models, an endpoint's
      client, a checkpoint)

One Ray request carries a batch of calls, so the driver's and Ray's cost per call is a
fraction of a process hop. Each actor runs the calls of all its batches on one pool of
threads, its share of `concurrency` (16 on 2 actors: 8 each; never more actors than
calls), so at most `concurrency` calls run at once over the cluster, as with the
thread pool, and the engine's CPU work
spreads over the cluster's cores; IN_FLIGHT batches per actor keep its pool busy while
the driver records the last one. The driver keeps the one prediction cache: a batch's
answers are written there when it returns, and on Ctrl-C the batches in flight still
come back and are saved, so an interrupted distributed run repeats no calls, exactly as
a local one. The runner never splits an image's tasks across batches, so one actor
analyses each image once for all tasks.

Why not Ray Data here: its streaming executor drops the outputs of blocks in flight
when the driver stops, which would repeat those calls on resume. Batched VLM inference
on GPUs goes through Ray Data's vLLM integration instead (`batch_llm.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from faceqa.cluster import RaySettings, connect
from faceqa.datasets.readers import FaceRecord
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput

BATCH = 4  # rounds of an actor's threads per request: the request's cost spread over 4 x threads calls
IN_FLIGHT = 2  # requests per actor: one being answered, one queued behind it


class RemoteFailure(RuntimeError):
    """A call that raised on an actor: its message is "Type: text" of the original error, `transient`
    the actor's predictor's verdict on it."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


class PredictorActor:
    """Lives in a Ray worker: one predictor, answering batches from the driver's runner threads on one pool."""

    def __init__(self, factory: Callable[[], Predictor], threads: int):
        self.predictor = factory()
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="faceqa-eval-actor")

    def describe(self) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        return self.predictor.name, tuple(self.predictor.tasks), self.predictor.describe()

    def predict(self, item: FaceRecord, task: str) -> tuple[str, Any]:
        """("ok", prediction fields), ("unusable", why) or ("failed", (message, transient)): never raises."""
        try:
            return "ok", self.predictor.predict(item, task).to_dict()
        except UnusableInput as error:
            return "unusable", str(error)
        except Exception as error:
            return "failed", (f"{type(error).__name__}: {error}", self.predictor.is_transient(error))

    def predict_batch(self, jobs: list[tuple[FaceRecord, str]]) -> list[tuple[str, Any]]:
        """`predict` of every job, in order, at most `threads` at once over all batches."""
        return list(self.pool.map(lambda job: self.predict(*job), jobs))

    def close(self) -> None:
        self.pool.shutdown()
        self.predictor.close()


class RayPredictor(Predictor):
    """`factory()` builds the real predictor inside each actor; it must be picklable (a module-level callable)."""

    def __init__(self, factory: Callable[[], Predictor], settings: RaySettings, concurrency: int,
                 cpus_per_actor: float = 1.0):
        self._ray = connect(settings)
        # `concurrency` calls at once over the cluster, as the thread pool: shared out, an actor per call at most.
        workers = max(1, min(settings.workers, concurrency))
        threads = [concurrency // workers + (i < concurrency % workers) for i in range(workers)]
        actor = self._ray.remote(num_cpus=cpus_per_actor, max_concurrency=IN_FLIGHT + 1)(PredictorActor)
        self._actors = [actor.remote(factory, n) for n in threads]
        self._batch = BATCH * threads[-1]
        self._busy = [0] * len(self._actors)  # batches in flight per actor
        self._lock = threading.Lock()
        # Every actor built its predictor (a bad checkpoint path fails here, once), then the first one's details.
        self.name, self.tasks, self._description = self._ray.get([a.describe.remote() for a in self._actors])[0]
        self._description = {**self._description, "ray": {"address": settings.address, "actors": workers,
                                                          "calls_per_actor": threads}}

    def describe(self) -> dict[str, Any]:
        return self._description

    def batching(self, concurrency: int) -> tuple[int, int]:
        """BATCH rounds of each actor's threads per request, IN_FLIGHT requests per actor at once."""
        return self._batch, IN_FLIGHT * len(self._actors)

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        outcome = self.predict_batch([(item, task)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def predict_batch(self, jobs: Sequence[tuple[FaceRecord, str]]) -> list[Prediction | Exception]:
        with self._lock:
            chosen = min(range(len(self._actors)), key=self._busy.__getitem__)
            self._busy[chosen] += 1
        try:
            outcomes = self._ray.get(self._actors[chosen].predict_batch.remote(list(jobs)))
        finally:
            with self._lock:
                self._busy[chosen] -= 1
        return [_outcome(kind, value) for kind, value in outcomes]

    def is_transient(self, error: Exception) -> bool:
        """The actor's verdict; a lost actor or node (Ray's own errors) is never the input's fault."""
        if isinstance(error, RemoteFailure):
            return error.transient
        return isinstance(error, self._ray.exceptions.RayError) or super().is_transient(error)

    def close(self) -> None:
        self._ray.get([a.close.remote() for a in self._actors])
        for actor in self._actors:
            self._ray.kill(actor)


def _outcome(kind: str, value: Any) -> Prediction | Exception:
    match kind:
        case "ok":
            return Prediction(**value)
        case "unusable":
            return UnusableInput(value)
        case _:
            return RemoteFailure(*value)
