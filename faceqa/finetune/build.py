"""`faceqa build-dataset`: labelled face datasets in, an instruction dataset of Q&A about faces out.

    readers (stream FaceRecords) -> per-face work (read, decode, crop, hash, Q&A text), here
      or on Ray actors (`--ray`, ray_stages.py) -> this process, in input order: drop near
      duplicates, make collages, fill shards
      -> commit shard + manifest line every `shard_size` source rows (see store.py)

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

import numpy as np
from tqdm import tqdm

from faceqa.cluster import RaySettings
from faceqa.datasets.readers import FORMATS, FaceRecord, LabelAudit, read_dataset
from faceqa.files import write_atomic
from faceqa.vlm.marks import draw_marks

from .collage import collage, tile_boxes
from .dedup import NearDuplicateIndex
from .lengths import target_chars
from .store import SETTINGS, SUMMARY, Manifest, Pending, dataset_card
from .tasks import ATTRIBUTES, Sample, composite_samples, marks_samples, seed_of
from .worker import Face, FaceJobConfig, Failure, encode_jpeg, faces

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
    chunk_size: int = 32  # rows per Ray batch
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
    results = _results(records, config)
    builder = _ShardBuilder(config, manifest, index)
    bar = tqdm(results, desc="faces", unit="row", disable=not progress, initial=len(done))
    for result in bar:
        builder.add(result)
        if len(builder.pending) >= config.shard_size:
            builder.commit()
        bar.set_postfix(builder.counts, refresh=False)
    builder.commit()

    totals = manifest.totals()
    summary = {**totals, "audit": audit.summary(), "output": str(out), "target_chars": target_chars(out),
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


def _results(records: Iterator[FaceRecord], config: BuildConfig) -> Iterator[Face | Failure]:
    if config.ray is None:
        return faces(records, config.job)
    from .ray_stages import faces as ray_faces

    return ray_faces(records, config.job, config.ray, config.chunk_size)


class _ShardBuilder:
    """Turns worker results into rows of the pending shard, in input order."""

    def __init__(self, config: BuildConfig, manifest: Manifest, index: NearDuplicateIndex | None):
        self.config, self.manifest, self.index = config, manifest, index
        self.pending = Pending()
        self.pools: dict[str, deque[Face]] = {}
        self.kept: dict[str, int] = {}
        self.counts = {"kept": 0, "duplicate": 0, "bad": 0}

    def add(self, result: Face | Failure) -> None:
        self.pending.keys.append(result.key)
        if isinstance(result, Failure):
            log.warning("skipped %s: %s", result.path, result.reason)
            self._drop("bad image or row", "bad")
            self.pending.bad.append([result.path, result.reason])
            return
        if self.index is not None and not self.index.add(result.phash):
            self._drop("near duplicate", "duplicate")
            return
        self.counts["kept"] += 1
        self.pending.hashes.append(f"{result.phash:x}")
        for attribute, label in result.labels.items():
            self.pending.faces[f"{result.split}|{attribute}|{label}"] += 1
        for n, sample in enumerate(result.samples):
            self._row(result.split, f"{result.key}#{sample.task}#{n}", result.jpeg, sample, [result])
        if {"composite", "marks"} & set(self.config.job.tasks) and self.config.composite_every > 0:
            self._pool(result)

    def _drop(self, reason: str, counter: str) -> None:
        self.pending.dropped[reason] += 1
        self.counts[counter] += 1

    def _row(self, split: str, row_id: str, jpeg: bytes, sample: Sample, faces: list[Face]) -> None:
        self.pending.tasks[f"{split}|{sample.task}"] += 1
        self.pending.rows.setdefault(split, []).append({
            "id": row_id,
            "image": {"bytes": jpeg, "path": None},
            "task": sample.task,
            "messages": sample.messages(),
            "prefix": sample.paligemma_question,
            "suffix": sample.paligemma_answer,
            "faces": [{"key": f.key, "source": f.source, **{a: f.labels.get(a) for a in ATTRIBUTES}} for f in faces],
        })

    def _pool(self, face: Face) -> None:
        """Keep recent faces per split; every `composite_every` faces, put a few of them in one picture.

        Collages only mix faces of one split, so validation collages hold no training face.
        """
        c = self.config
        pool = self.pools.setdefault(face.split, deque(maxlen=c.composite_pool))
        pool.append(face)
        self.kept[face.split] = self.kept.get(face.split, 0) + 1
        if self.kept[face.split] % c.composite_every or len(pool) < c.composite_people[0]:
            return
        name = f"composite:{face.split}:{self.manifest.next_shard}:{self.kept[face.split]}"
        rng = random.Random(seed_of(str(c.job.seed), name))
        count = rng.randint(c.composite_people[0], min(c.composite_people[1], len(pool)))
        people = rng.sample(list(pool), count)
        pixels = collage([p.jpeg for p in people], c.job.crop.size)
        if "composite" in c.job.tasks:
            image = encode_jpeg(pixels, c.job.jpeg_quality)
            samples = composite_samples(name, [p.labels for p in people], c.job.seed, c.composite_questions)
            for n, sample in enumerate(samples):
                self._row(face.split, f"{name}#{sample.task}#{n}", image, sample, people)
        if "marks" in c.job.tasks:  # the same collage with the boxes the assistant draws for a VLM
            boxes = list(enumerate(tile_boxes(count, c.job.crop.size), 1))
            marked = encode_jpeg(np.asarray(draw_marks(pixels, boxes)), c.job.jpeg_quality)
            for sample in marks_samples(name, [p.labels for p in people], c.job.seed):
                self._row(face.split, f"{name}#{sample.task}#0", marked, sample, people)

    def commit(self) -> None:
        if len(self.pending) == 0:
            return
        self.manifest.commit(self.pending)
        self.pending = Pending()

