"""`eval run --ray`: a predictor whose calls run on Ray actors, behind the same runner, cache and report.

    runner threads (as many as --concurrency) -> RayPredictor.predict -> actor k (its own
      predictor, built once by `factory`: the engine's models, an endpoint's client, a checkpoint)

Each actor is a threaded Ray actor taking at most `ceil(concurrency / workers)` calls at
once, so endpoint calls are bounded per actor and the engine's CPU work spreads over the
cluster's cores. The driver keeps the one prediction cache: a call's answer is written
there when it returns, and on Ctrl-C the calls in flight still come back and are saved,
so an interrupted distributed run repeats no calls, exactly as a local one. Every task
of an image goes to the same actor (chosen from its key), where the engine analyses the
image once for all tasks.

Why not Ray Data here: its streaming executor drops the outputs of blocks in flight
when the driver stops, which would repeat those calls on resume. Batched VLM inference
on GPUs goes through Ray Data's vLLM integration instead (`batch_llm.py`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

from faceqa.cluster import RaySettings, connect
from faceqa.datasets.readers import FaceRecord
from faceqa.eval.predictor import Prediction, Predictor, UnusableInput


class RemoteFailure(RuntimeError):
    """A call that raised on an actor: its message is "Type: text" of the original error, `transient`
    the actor's predictor's verdict on it."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


class PredictorActor:
    """Lives in a Ray worker: one predictor, answering calls from the driver's runner threads."""

    def __init__(self, factory: Callable[[], Predictor]):
        self.predictor = factory()

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

    def close(self) -> None:
        self.predictor.close()


class RayPredictor(Predictor):
    """`factory()` builds the real predictor inside each actor; it must be picklable (a module-level callable)."""

    def __init__(self, factory: Callable[[], Predictor], settings: RaySettings, concurrency: int,
                 cpus_per_actor: float = 1.0):
        self._ray = connect(settings)
        per_actor = max(1, math.ceil(concurrency / settings.workers))
        actor = self._ray.remote(num_cpus=cpus_per_actor, max_concurrency=per_actor)(PredictorActor)
        self._actors = [actor.remote(factory) for _ in range(settings.workers)]
        # Every actor built its predictor (a bad checkpoint path fails here, once), then the first one's details.
        self.name, self.tasks, self._description = self._ray.get([a.describe.remote() for a in self._actors])[0]
        self._description = {**self._description, "ray": {"address": settings.address, "actors": settings.workers,
                                                          "calls_per_actor": per_actor}}

    def describe(self) -> dict[str, Any]:
        return self._description

    def predict(self, item: FaceRecord, task: str) -> Prediction:
        actor = self._actors[zlib.crc32(item.key.encode("utf-8")) % len(self._actors)]
        kind, value = self._ray.get(actor.predict.remote(item, task))
        match kind:
            case "ok":
                return Prediction(**value)
            case "unusable":
                raise UnusableInput(value)
            case _:
                raise RemoteFailure(*value)

    def is_transient(self, error: Exception) -> bool:
        """The actor's verdict; a lost actor or node (Ray's own errors) is never the input's fault."""
        if isinstance(error, RemoteFailure):
            return error.transient
        return isinstance(error, self._ray.exceptions.RayError) or super().is_transient(error)

    def close(self) -> None:
        self._ray.get([a.close.remote() for a in self._actors])
        for actor in self._actors:
            self._ray.kill(actor)
