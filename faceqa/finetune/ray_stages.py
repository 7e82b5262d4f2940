"""`build-dataset --ray`: the build's FaceStage (worker.py) as Ray actors, results back in input order.

    records, in batches -> actor k = batch n mod workers: FaceStage.faces (read, decode,
      detect/crop, hash, encode, Q&A rows; models loaded once per actor) -> the driver
      takes each batch's FaceInfos in submission order (the rows and crops stay in the
      object store) -> its plan of a shard -> an actor's FaceStage.shard (slices, collages,
      Parquet files written into the output folder) -> the driver commits them with the
      manifest line, in order

The driver keeps what must see every row in order (near-duplicate index, who is in a
collage, commits), so the rows are exactly those of the one-machine path, which runs the
same FaceStage in its own process; the actors do all the per-row CPU work. At most
IN_FLIGHT batches per actor are queued, which bounds what the object store and the
driver hold however large the input, and keeps every actor busy while the driver
consumes. An actor does one call at a time, a shard in turn with the face batches
queued before it: one worker is one CPU, as Ray was told when it placed the actor.

Ray core actors rather than Ray Data: a shard needs the driver's decisions (what was
kept, which collages) applied to rows the actors made, a way back into the actors that a
Ray Data pipeline, which flows one way, does not have. Records travel as pickles (paths,
labels): the images are read and the shards written by the actors, so on several nodes
the dataset and the output folder must sit on storage every node mounts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from faceqa.cluster import RaySettings, connect
from faceqa.datasets.readers import FaceRecord

from .rows import Plan
from .worker import Batch, FaceJobConfig, FaceStage, chunks

IN_FLIGHT = 2  # batches queued per actor: one running, one ready to start the moment it ends


class RayStage:
    """`settings.workers` FaceStage actors of one CPU each; `build.InProcess`'s interface."""

    def __init__(self, config: FaceJobConfig, out: Path, settings: RaySettings):
        self.ray = connect(settings)
        # A lost actor's calls are redone: they are pure, or (shards) rewrite the same file atomically.
        actor = self.ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(FaceStage)
        self.actors = [actor.remote(config, out) for _ in range(settings.workers)]
        blind = sorted({node for node, sees in self.ray.get([a.sees_output.remote() for a in self.actors])
                        if not sees})
        if blind:
            self.close()
            raise FileNotFoundError(f"{out}: the build's output folder is not visible on {', '.join(blind)}; the "
                                    "actors write the shards there, so on several nodes it must be on storage "
                                    "every node mounts (docs/deploy.md)")

    def batches(self, records: Iterable[FaceRecord], size: int) -> Iterator[Batch]:
        """Each batch's (FaceInfos, rows ref, crops ref), in input order."""
        queue: deque[list[Any]] = deque()
        for n, chunk in enumerate(chunks(records, size)):
            queue.append(self.actors[n % len(self.actors)].faces.options(num_returns=3).remote(chunk))
            if len(queue) >= IN_FLIGHT * len(self.actors):
                yield self._take(queue.popleft())
        while queue:
            yield self._take(queue.popleft())

    def _take(self, refs: list[Any]) -> Batch:
        infos, rows, crops = refs
        return self.ray.get(infos), rows, crops

    def shard(self, number: int, plan: Plan, objects: list[Any]) -> Any:
        """A reference to the shard's `Written`; `objects` (references) reach the actor resolved."""
        return self.actors[number % len(self.actors)].shard.remote(number, plan, *objects)

    def ready(self, handle: Any) -> bool:
        return bool(self.ray.wait([handle], timeout=0)[0])

    def get(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def close(self) -> None:
        """The actors hold a CPU each: free them for the next build of this process."""
        for actor in self.actors:
            self.ray.kill(actor)
