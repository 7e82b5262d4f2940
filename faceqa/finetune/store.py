"""The dataset on disk: Parquet shards per split, and a manifest that makes a build resumable.

    OUT/
      train/shard-00000.parquet ...     rows (schema: FEATURES), one file per split per commit
      validation/shard-00000.parquet ...
      manifest.jsonl                    one line per committed shard: the row keys it consumed, ...
      build.json                        the settings the build was started with
      summary.json, README.md           label balance per split, what was dropped and why; dataset card

A shard's files are written where its rows are made (`write_shard`, by the build's
stage: in this process or on a Ray actor), each to a temporary name, fsynced and renamed
into place (atomic); the driver then commits them, in order, by appending one manifest
line (fsynced). A crash before the line leaves shards no line names: the next run
deletes them and redoes their keys. A crash mid-line leaves a line that does not parse:
it is cut off the same way. So every source row is in exactly one committed shard, or in
none and done again.

Each line also records its files' sizes; loading checks every committed file against
them and against its Parquet footer's row count. A shard deleted, truncated or
rewritten since costs its whole commit: the line is dropped, its other files removed,
and its source rows are redone, so the summary never counts rows that are not there.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from faceqa.files import write_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
SETTINGS = "build.json"
SUMMARY = "summary.json"


_STRING = {"dtype": "string", "_type": "Value"}
# The row schema, as Hugging Face `datasets` writes features (Features.to_dict) into a Parquet file's metadata, so
# `load_dataset` reads `image` as an Image. `faces` is the ground truth of every face in the image, left to right.
FEATURES: dict[str, Any] = {
    "id": _STRING,
    "image": {"_type": "Image"},
    "task": _STRING,
    "messages": {"feature": {"role": _STRING, "content": {"feature": {"type": _STRING, "text": _STRING},
                                                          "_type": "List"}}, "_type": "List"},
    "prefix": _STRING,
    "suffix": _STRING,
    "faces": {"feature": {"key": _STRING, "source": _STRING, "race": _STRING, "gender": _STRING,
                          "age_group": _STRING, "emotion": _STRING}, "_type": "List"},
}


def _arrow_type(feature: dict[str, Any]) -> Any:
    """The Arrow type `datasets` stores a feature as (only the kinds FEATURES uses)."""
    import pyarrow as pa

    if "_type" not in feature:  # named features: a struct
        return pa.struct({name: _arrow_type(inner) for name, inner in feature.items()})
    match feature["_type"]:
        case "Value" if feature["dtype"] == "string":
            return pa.string()
        case "Image":
            return pa.struct({"bytes": pa.binary(), "path": pa.string()})
        case "List":
            return pa.list_(_arrow_type(feature["feature"]))
    raise ValueError(f"no Arrow type for the feature {feature}")


@cache
def arrow_schema() -> Any:
    """FEATURES as the shards' Arrow schema, built without importing `datasets` (a second per worker)."""
    import pyarrow as pa

    metadata = {"huggingface": json.dumps({"info": {"features": FEATURES}})}
    return pa.schema([(name, _arrow_type(feature)) for name, feature in FEATURES.items()], metadata=metadata)


def shard_table(rows: list[dict]) -> Any:
    """Rows as a pyarrow Table with the row schema (its metadata carries the HF features)."""
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=arrow_schema())


def encode_shard(table: Any) -> bytes:
    """A table as the bytes of one Parquet file; the same rows give the same bytes however they were chunked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table.combine_chunks(), sink)
    return sink.getvalue().to_pybytes()


def shard_name(split: str, number: int) -> str:
    """A shard file's path inside the output folder."""
    return f"{split}/shard-{number:05d}.parquet"


@dataclass
class Written:
    """A shard's files, in place under their final names but not yet committed (no manifest line names them)."""

    number: int = 0  # of the shard: its files' names and its manifest line's "shard"
    sizes: dict[str, int] = field(default_factory=dict)  # file (shard_name) -> bytes
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows in its file
    tasks: Counter = field(default_factory=Counter)  # "split|task" -> rows
    lengths: Counter = field(default_factory=Counter)  # "split|task|characters of the answer" -> rows


def answer_lengths(split: str, table: Any) -> Counter:
    """"split|task|characters" -> rows of a shard's table: its answers' (suffixes') lengths, for the summary."""
    columns = table.select(["task", "suffix"]).to_pydict()
    return Counter(f"{split}|{task}|{len(suffix)}" for task, suffix in zip(columns["task"], columns["suffix"],
                                                                            strict=True))


def write_shard(out: Path, number: int, tables: dict[str, Any]) -> Written:
    """Each split's table (pyarrow) as shard `number` of that split, written atomically; empty ones are skipped."""
    written = Written(number)
    for split, table in tables.items():
        if table.num_rows:
            name, data = shard_name(split, number), encode_shard(table)
            write_atomic(out / name, data)
            lengths = answer_lengths(split, table)
            written.sizes[name], written.rows[split] = len(data), table.num_rows
            written.lengths.update(lengths)
            for key, rows in lengths.items():  # "split|task" -> rows, from the same pass over the table
                written.tasks[key.rsplit("|", 1)[0]] += rows
    return written


@dataclass
class Pending:
    """What the next commit holds: the bookkeeping of every source row consumed, and its shard once written."""

    keys: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    faces: Counter = field(default_factory=Counter)  # "split|attribute|label" -> faces
    dropped: Counter = field(default_factory=Counter)  # "duplicate", "bad image or row"
    bad: list[list[str]] = field(default_factory=list)  # [path, reason], all of them
    written: Written = field(default_factory=Written)

    def __len__(self) -> int:
        return len(self.keys)


class Manifest:
    """The committed shards of one output folder; loading it repairs what a crash left behind."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / MANIFEST
        self.records: list[dict[str, Any]] = []
        self._load()
        self._drop_damaged()
        self._remove_orphans()

    def _load(self) -> None:
        if not self.path.exists():
            return
        good_bytes = 0
        with open(self.path, "rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    break
                if not line.endswith(b"\n"):
                    break
                self.records.append(record)
                good_bytes += len(line)
        if good_bytes != self.path.stat().st_size:
            log.warning("%s: cutting off an interrupted last line", self.path)
            with open(self.path, "r+b") as handle:
                handle.truncate(good_bytes)

    def _drop_damaged(self) -> None:
        kept = [record for record in self.records if not self._damage(record)]
        if len(kept) == len(self.records):
            return
        self.records = kept
        write_atomic(self.path, b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8") for r in kept))

    def _damage(self, record: dict[str, Any]) -> str:
        """Why a committed shard's files no longer match its manifest line ("" when they do)."""
        import pyarrow.parquet as pq

        for relative in record["files"]:
            path = self.out / relative
            split = relative.split("/", 1)[0]
            if not path.is_file():
                problem = "is missing"
            elif "sizes" in record and path.stat().st_size != record["sizes"][relative]:
                problem = f"has {path.stat().st_size} bytes, the manifest says {record['sizes'][relative]}"
            else:
                try:
                    rows = pq.ParquetFile(path).metadata.num_rows
                except Exception as error:  # a damaged footer: whatever pyarrow raises, the file is unusable
                    problem = f"is unreadable ({type(error).__name__})"
                else:
                    problem = "" if rows == record["rows"].get(split) else \
                        f"has {rows} rows, the manifest says {record['rows'].get(split)}"
            if problem:
                log.warning("%s %s: its shard's %d source rows will be redone", relative, problem,
                            len(record["keys"]))
                return problem
        return ""

    def _remove_orphans(self) -> None:
        named = {f for record in self.records for f in record["files"]}
        for path in sorted(self.out.glob("*/shard-*")):
            relative = path.relative_to(self.out).as_posix()
            if relative not in named:
                log.warning("removing %s: written by an interrupted run, its rows will be redone", relative)
                path.unlink()

    @property
    def done(self) -> set[str]:
        return {key for record in self.records for key in record["keys"]}

    @property
    def hashes(self) -> list[int]:
        return [int(h, 16) for record in self.records for h in record["hashes"]]

    @property
    def next_shard(self) -> int:
        return 1 + max((r["shard"] for r in self.records), default=-1)

    def commit(self, pending: Pending) -> dict[str, Any]:
        """Record the pending shard, whose files are written, as the next one; returns the manifest record."""
        written = pending.written
        if written.number != self.next_shard:
            raise RuntimeError(f"shard {written.number} committed out of order: the next is {self.next_shard}")
        record = {
            "shard": written.number, "files": sorted(written.sizes), "sizes": dict(sorted(written.sizes.items())),
            "keys": pending.keys, "hashes": pending.hashes, "rows": written.rows,
            "faces": dict(pending.faces), "tasks": dict(written.tasks), "dropped": dict(pending.dropped),
            "bad": pending.bad, "lengths": dict(written.lengths),
        }
        with open(self.path, "ab") as handle:
            handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)
        return record

    def lengths(self) -> Counter:
        """"split|task|characters" -> rows over every committed shard (read from the files of a shard committed
        by an older faceqa, whose manifest line has no lengths)."""
        import pyarrow.parquet as pq

        lengths: Counter[str] = Counter()
        for record in self.records:
            if "lengths" in record:
                lengths.update(record["lengths"])
                continue
            for relative in record["files"]:
                table = pq.read_table(self.out / relative, columns=["task", "suffix"])
                lengths.update(answer_lengths(relative.split("/", 1)[0], table))
        return lengths

    def totals(self) -> dict[str, Any]:
        """Sums over every committed shard: rows, faces per label, tasks, drops."""
        rows: Counter[str] = Counter()
        faces: Counter[str] = Counter()
        tasks: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        for record in self.records:
            rows.update(record["rows"])
            faces.update(record["faces"])
            tasks.update(record["tasks"])
            dropped.update(record["dropped"])
        balance: dict[str, dict[str, dict[str, int]]] = {}
        for key, n in sorted(faces.items()):
            split, attribute, label = key.split("|", 2)
            balance.setdefault(split, {}).setdefault(attribute, {})[label] = n
        per_task: dict[str, dict[str, int]] = {}
        for key, n in sorted(tasks.items()):
            split, task = key.split("|", 1)
            per_task.setdefault(split, {})[task] = n
        return {"rows": dict(rows), "balance": balance, "tasks": per_task, "dropped": dict(dropped),
                "bad_examples": [b for record in self.records for b in record["bad"]][:50]}


def dataset_card(splits: list[str]) -> str:
    """README.md whose YAML header lets `datasets.load_dataset(OUT)` and the Hub find the splits."""
    files = "\n".join(f"  - split: {s}\n    path: {s}/*.parquet" for s in splits)
    return (f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}\n---\n\n"
            "# faceqa instruction dataset\n\n"
            "Built by `faceqa build-dataset`; see summary.json for the label balance per split and what was "
            "dropped.\nColumns: id, image, task, messages (chat), prefix/suffix (PaliGemma), faces (ground truth, "
            "left to right).\nAttributes are *apparent* labels given by annotators, not facts about the people.\n")


def load_built(out: str | Path, cache_dir: str | Path | None = None):
    """The built dataset as a `datasets.DatasetDict` (Arrow, memory-mapped from the cache it converts into)."""
    from datasets import load_dataset

    out = Path(out)
    splits = sorted(p.name for p in out.iterdir() if p.is_dir() and any(p.glob("shard-*.parquet")))
    if not splits:
        raise FileNotFoundError(f"{out}: no built dataset here (no <split>/shard-*.parquet)")
    files = {s: sorted(str(p) for p in (out / s).glob("shard-*.parquet")) for s in splits}
    return load_dataset("parquet", data_files=files, cache_dir=str(cache_dir) if cache_dir else None)
