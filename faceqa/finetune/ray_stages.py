"""`build-dataset --ray`: the per-face work as a Ray Data pipeline, results back in input order.

    records (pickled, in windows) -> from_items -> map_batches(FaceStage: read, decode,
      detect/crop, hash, encode, Q&A text; an actor per worker, models loaded once each)
      -> iter_batches (order preserved) -> the driver's shard builder (dedup, collages, commits)

The driver keeps what must see every row in order (near-duplicate index, collages,
commits), so the rows are exactly those of the one-machine path; the actors do all the
per-row CPU work. Records travel as pickles (paths, labels: the images are read by the
actors, so on several nodes the dataset must sit on storage every node mounts). Windows
bound what the driver and the object store hold however large the input.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from faceqa.cluster import RaySettings, connect
from faceqa.datasets.readers import FaceRecord

from .worker import Face, FaceJob, FaceJobConfig, Failure

WINDOW = 25_000  # records per Ray Data execution


class FaceStage:
    """A Ray Data actor: one FaceJob (face models loaded once), applied to batches of pickled records."""

    def __init__(self, config: FaceJobConfig):
        self.job = FaceJob(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.dumps(self.job(pickle.loads(record))) for record in batch["record"]]
        return {"result": np.array(results, dtype=object)}


def faces(records: Iterable[FaceRecord], config: FaceJobConfig, settings: RaySettings,
          batch_size: int = 32) -> Iterator[Face | Failure]:
    """`worker.faces`, on Ray: the same results in the same order."""
    ray = connect(settings)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # first seen wins in dedup, as on one machine
    context.enable_progress_bars = False  # the build shows its own
    context.print_on_execution_start = False
    iterator = iter(records)
    while window := [pickle.dumps(r) for r in itertools.islice(iterator, WINDOW)]:
        dataset = ray.data.from_items([{"record": r} for r in window],
                                      override_num_blocks=max(1, len(window) // (4 * batch_size)))
        del window
        results = dataset.map_batches(FaceStage, fn_constructor_args=(config,), batch_size=batch_size,
                                      batch_format="numpy", concurrency=settings.workers, num_cpus=1)
        for batch in results.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
            yield from (_result(r) for r in batch["result"])


def _result(data: Any) -> Face | Failure:
    result = pickle.loads(data)
    assert isinstance(result, Face | Failure)
    return result
