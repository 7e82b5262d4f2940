"""`faceqa build-dataset`: labelled face datasets in, an instruction dataset of Q&A about faces out.

    readers (stream FaceRecords) -> batches of per-row work (read, decode, crop, hash, Q&A
      rows; worker.FaceStage), here or on Ray actors (`--ray`, ray_stages.py) -> this
      process, in input order: drop near duplicates, choose collages, plan each shard
      -> the stage makes and writes the shard (the kept rows, the collages' pictures, Parquet
      files; rows.py, store.write_shard) -> commit it with a manifest line every `shard_size`
      source rows, in order (store.py)

This process only decides: what must see every row in order (the near-duplicate index,
who is in a collage, shard boundaries, commits) stays here; everything that costs CPU per
row runs in the stage, so a build scales with Ray workers.

Resuming is the same command again: rows the manifest names are skipped before any
work, and the dedup index is refilled from the manifest, so a resumed build writes
what an uninterrupted one would have (composites aside: their face pool restarts).
The same inputs give the same rows on one machine and on Ray, with any number of workers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from faceqa.cluster import RaySettings
from faceqa.datasets.readers import FORMATS, FaceRecord, LabelAudit, read_dataset
from faceqa.files import write_atomic

from .dedup import NearDuplicateIndex
from .lengths import target_chars
from .rows import Collage, Person, Plan, Slice
from .store import SETTINGS, SUMMARY, Manifest, Pending, Written, dataset_card
from .tasks import seed_of
from .worker import Batch, FaceInfo, FaceJobConfig, FaceStage, Failure, chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One input dataset: a reader format, its path and the reader's options."""

    format: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Source:
        """`FORMAT=PATH[,key=value...]`, e.g. `fairface=/data/fairface` or `csv=x.csv,image=file,age=Age`."""
        head, _, rest = spec.partition(",")
        fmt, sep, path = head.partition("=")
        if not sep or not path:
            raise ValueError(f"dataset spec {spec!r}: expected FORMAT=PATH[,key=value...]")
        options: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"dataset spec {spec!r}: option {item!r} is not key=value")
            options[key.strip()] = value.strip()
        fmt = fmt.strip()
        if fmt not in FORMATS:
            raise ValueError(f"dataset spec {spec!r}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        if not Path(path).exists():
            raise FileNotFoundError(f"dataset spec {spec!r}: {path} does not exist")
        if fmt == "csv":  # the generic CSV reader takes a column mapping; everything but root/source is one
            columns = {k: v for k, v in options.items() if k not in ("root", "source")}
            options = {k: v for k, v in options.items() if k in ("root", "source")} | {"columns": columns}
        return cls(fmt, path, options)

    def read(self, audit: LabelAudit) -> Iterator[FaceRecord]:
        return read_dataset(self.format, self.path, audit=audit, **self.options)


@dataclass(frozen=True)
class BuildConfig:
    job: FaceJobConfig = field(default_factory=FaceJobConfig)
    dedup_distance: int = 4  # bits; < 0 turns deduplication off
    ray: RaySettings | None = None  # None: the per-face work runs in this process
    shard_size: int = 1000  # source rows per commit: bounds memory and the work an interruption loses
    chunk_size: int = 128  # source rows per batch of the per-row work (a Ray call on Ray)
    composite_every: int = 8  # one collage per this many kept faces of a split; 0: none
    composite_people: tuple[int, int] = (2, 4)
    composite_questions: int = 2
    composite_pool: int = 256  # recent faces of a split that collages draw from


def run_build(sources: Iterable[Source], out: str | Path, config: BuildConfig, overwrite: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Build (or resume building) the dataset in `out`; returns the summary also written to summary.json."""
    sources = list(sources)
    out = Path(out)
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, sources, config)
    manifest = Manifest(out)
    done = manifest.done
    index = NearDuplicateIndex(config.job.hash_size**2, config.dedup_distance) if config.dedup_distance >= 0 else None
    if index is not None:
        for value in manifest.hashes:
            index.insert(value)
    if done:
        log.info("resuming: %d source rows already done in %d shards", len(done), len(manifest.records))

    audit = LabelAudit()
    read: dict[str, int] = {}
    records = _fresh(sources, audit, done, read)
    stage = _stage(config, out.resolve())  # absolute: a cluster's actors have working directories of their own
    try:
        builder = _ShardBuilder(config, manifest, index, stage)
        with tqdm(desc="faces", unit="row", disable=not progress, initial=len(done)) as bar:
            for batch in stage.batches(records, config.chunk_size):
                builder.add_batch(batch)
                bar.update(len(batch[0]))
                bar.set_postfix(builder.counts, refresh=False)
        builder.finish()
    finally:
        stage.close()

    totals = manifest.totals()
    summary = {**totals, "audit": audit.summary(), "output": str(out), "target_chars": target_chars(manifest.lengths()),
               "warnings": _warnings(config, totals)}
    for warning in summary["warnings"]:
        log.warning("%s", warning)
    write_atomic(out / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False).encode("utf-8"))
    write_atomic(out / "README.md", dataset_card(sorted(totals["rows"])).encode("utf-8"))
    empty = [name for name, n in read.items() if n == 0]
    if empty:
        skipped = "; ".join(f"{k} x{v['count']}" for k, v in summary["audit"]["skipped_rows"].items())
        raise ValueError(f"{', '.join(empty)}: the reader produced no rows"
                         + (f" (skipped: {skipped})" if skipped else " (is the path the dataset's root?)"))
    return summary


def _warnings(config: BuildConfig, totals: dict[str, Any]) -> list[str]:
    """What was asked for but could not be built, said once at the end rather than found later in training."""
    made = {task for tasks in totals["tasks"].values() for task in tasks}
    warnings = []
    if "attributes" in config.job.tasks and "attributes" not in made:
        warnings.append("task 'attributes' made 0 rows: it needs faces labelled with all of race, gender, age group "
                        "and emotion, and no source has all four (FairFace has no emotion, AffectNet only emotion)")
    if "reasoning" in config.job.tasks and "reasoning" not in made:
        warnings.append("task 'reasoning' made 0 rows: it needs faces with an emotion label")
    return warnings


def _check_settings(out: Path, sources: list[Source], config: BuildConfig) -> None:
    """A resume must use the settings the build started with, or its shards would disagree."""
    settings = {"sources": [dataclasses.asdict(s) for s in sources],
                "config": {k: v for k, v in dataclasses.asdict(config).items()
                           if k not in ("ray", "shard_size", "chunk_size")}}  # safe to change on resume
    text = json.dumps(settings, indent=2, sort_keys=True, default=str)
    path = out / SETTINGS
    if path.exists():
        if json.loads(path.read_text()) != json.loads(text):
            raise ValueError(f"{out} holds a build with other settings ({path}); resume with the same options, "
                             "or pass --overwrite to start again")
        return
    write_atomic(path, text.encode("utf-8"))


def _fresh(sources: list[Source], audit: LabelAudit, done: set[str], read: dict[str, int]) -> Iterator[FaceRecord]:
    """Records not yet committed; a key seen twice (the same dataset given twice) is read once.

    `read` counts the records each source yielded, committed or not: a source with none
    is an error (a wrong root or layout), not an empty success.
    """
    seen: set[str] = set()
    for source in sources:
        name = f"{source.format}={source.path}"
        read[name] = 0
        for record in source.read(audit):
            read[name] += 1
            if record.key in done or record.key in seen:
                continue
            seen.add(record.key)
            yield record


def _stage(config: BuildConfig, out: Path) -> Any:
    if config.ray is None:
        return InProcess(config.job, out)
    from .ray_stages import RayStage

    return RayStage(config.job, out, config.ray)


class InProcess:
    """The one-machine stage: one FaceStage in this process, its results ready at once (RayStage's interface)."""

    def __init__(self, config: FaceJobConfig, out: Path):
        self.stage = FaceStage(config, out)

    def batches(self, records: Iterable[FaceRecord], size: int) -> Iterator[Batch]:
        return map(self.stage.faces, chunks(records, size))

    def shard(self, number: int, plan: Plan, objects: list[Any]) -> Written:
        return self.stage.shard(number, plan, *objects)

    def ready(self, handle: Written) -> bool:
        return True

    def get(self, handle: Written) -> Written:
        return handle

    def close(self) -> None:
        pass


class _ShardBuilder:
    """Turns the stage's batches into the plans of shards, in input order, and commits them in order.

    The driver decides and counts; the stage makes the rows: a plan names the kept faces'
    rows (slices of their batches' tables) and the collages chosen, and the stage writes it
    as Parquet while the driver goes on. At most IN_FLIGHT shards are being made at once.
    """

    IN_FLIGHT = 2

    def __init__(self, config: BuildConfig, manifest: Manifest, index: NearDuplicateIndex | None, stage: Any):
        self.config, self.manifest, self.index, self.stage = config, manifest, index, stage
        self.shard = manifest.next_shard  # of the pending plan; committed in order, so the manifest's next then
        self.pools: dict[str, deque[tuple[Any, int, FaceInfo]]] = {}
        self.kept: dict[str, int] = {}
        self.counts = {"kept": 0, "duplicate": 0, "bad": 0}
        self.in_flight: deque[tuple[Pending, Any]] = deque()
        self._start()

    def _start(self) -> None:
        self.pending = Pending()
        self.plan: Plan = {}
        self.objects: list[Any] = []  # the tables and crops the plan refers to, by position
        self._positions: dict[int, int] = {}

    def _object(self, value: Any) -> int:
        if id(value) not in self._positions:
            self._positions[id(value)] = len(self.objects)
            self.objects.append(value)
        return self._positions[id(value)]

    def add_batch(self, batch: Batch) -> None:
        infos, table, crops = batch
        row = face = 0
        for info in infos:
            if isinstance(info, FaceInfo):
                self.add(info, (table, row), (crops, face))
                row, face = row + info.rows, face + 1
            else:
                self.add(info, None, None)
            if len(self.pending) >= self.config.shard_size:
                self.commit()

    def add(self, info: FaceInfo | Failure, rows: tuple[Any, int] | None, crop: tuple[Any, int] | None) -> None:
        self.pending.keys.append(info.key)
        if isinstance(info, Failure):
            log.warning("skipped %s: %s", info.path, info.reason)
            self._drop("bad image or row", "bad")
            self.pending.bad.append([info.path, info.reason])
            return
        assert rows is not None and crop is not None
        if self.index is not None and not self.index.add(info.phash):
            self._drop("near duplicate", "duplicate")
            return
        self.counts["kept"] += 1
        self.pending.hashes.append(f"{info.phash:x}")
        for attribute, label in info.labels.items():
            self.pending.faces[f"{info.split}|{attribute}|{label}"] += 1
        if info.rows:
            self._rows(info.split, self._object(rows[0]), rows[1], rows[1] + info.rows)
        if {"composite", "marks"} & set(self.config.job.tasks) and self.config.composite_every > 0:
            self._pool(info, crop)

    def _drop(self, reason: str, counter: str) -> None:
        self.pending.dropped[reason] += 1
        self.counts[counter] += 1

    def _rows(self, split: str, table: int, start: int, stop: int) -> None:
        parts = self.plan.setdefault(split, [])
        last = parts[-1] if parts else None
        if isinstance(last, Slice) and last.table == table and last.stop == start:
            parts[-1] = Slice(table, last.start, stop)
        else:
            parts.append(Slice(table, start, stop))

    def _pool(self, face: FaceInfo, crop: tuple[Any, int]) -> None:
        """Keep recent faces per split; every `composite_every` faces, put a few of them in one picture.

        Collages only mix faces of one split, so validation collages hold no training face.
        """
        c = self.config
        pool = self.pools.setdefault(face.split, deque(maxlen=c.composite_pool))
        pool.append((*crop, face))
        self.kept[face.split] = self.kept.get(face.split, 0) + 1
        if self.kept[face.split] % c.composite_every or len(pool) < c.composite_people[0]:
            return
        name = f"composite:{face.split}:{self.shard}:{self.kept[face.split]}"
        rng = random.Random(seed_of(str(c.job.seed), name))
        count = rng.randint(c.composite_people[0], min(c.composite_people[1], len(pool)))
        people = [Person(self._object(crops), index, f.key, f.source, f.labels)
                  for crops, index, f in rng.sample(list(pool), count)]
        self.plan.setdefault(face.split, []).append(Collage(name, people, c.composite_questions))

    def commit(self) -> None:
        """Send the pending plan to be made; commit the shards already made, in order."""
        if len(self.pending):
            self.in_flight.append((self.pending, self.stage.shard(self.shard, self.plan, self.objects)))
            self.shard += 1
            self._start()
        while self.in_flight and (len(self.in_flight) > self.IN_FLIGHT or self.stage.ready(self.in_flight[0][1])):
            self._commit_oldest()

    def finish(self) -> None:
        self.commit()
        while self.in_flight:
            self._commit_oldest()

    def _commit_oldest(self) -> None:
        pending, handle = self.in_flight.popleft()
        pending.written = self.stage.get(handle)
        self.manifest.commit(pending)
