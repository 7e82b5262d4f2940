"""A build's rows, made where the pixels are: a face's rows, a collage's rows, a shard's tables from the driver's plan.

The driver decides (which faces are kept, who is in which collage, what goes in which
shard) and sends a `Plan`; a `FaceStage` (worker.py), in this process or on a Ray
actor, does the work: slices the kept faces' rows out of their batches' tables, composes
and encodes the collages into each split's table, which `store.write_shard` writes as
Parquet. A plan refers to the batches' tables and crops by position in a list of objects
passed beside it, so on Ray they go from actor to actor through the object store and
never through the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from faceqa.crops import encode_jpeg

from .collage import collage, tile_boxes
from .store import shard_table
from .tasks import ATTRIBUTES, Sample, composite_samples, marks_samples

if TYPE_CHECKING:
    from .worker import Face, FaceJobConfig


@dataclass(frozen=True)
class Slice:
    """Consecutive rows [start, stop) of one batch's row table (`objects[table]`)."""

    table: int
    start: int
    stop: int


@dataclass(frozen=True)
class Person:
    """One face of a collage: its crop (`objects[crops][index]`) and the ground truth its rows carry."""

    crops: int
    index: int
    key: str
    source: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Collage:
    """A collage the driver chose: its name (row ids and seeds derive from it) and its people, left to right."""

    name: str
    people: list[Person]
    questions: int


Plan = dict[str, list[Slice | Collage]]  # split -> its rows in order


def row(row_id: str, jpeg: bytes, sample: Sample, faces: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the schema (store.FEATURES); `faces` holds each face's key, source and labels, left to right."""
    return {
        "id": row_id,
        "image": {"bytes": jpeg, "path": None},
        "task": sample.task,
        "messages": sample.messages(),
        "prefix": sample.paligemma_question,
        "suffix": sample.paligemma_answer,
        "faces": faces,
    }


def _face(key: str, source: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"key": key, "source": source, **{a: labels.get(a) for a in ATTRIBUTES}}


def face_rows(face: Face) -> list[dict[str, Any]]:
    """The rows of one face's own crop, one per sample."""
    info = face.info
    faces = [_face(info.key, info.source, info.labels)]
    return [row(f"{info.key}#{sample.task}#{n}", face.jpeg, sample, faces) for n, sample in enumerate(face.samples)]


def collage_rows(spec: Collage, crops: Sequence[bytes], config: FaceJobConfig) -> list[dict[str, Any]]:
    """A collage's rows: its questions on the plain picture, then set-of-marks on the same one with boxes drawn."""
    from faceqa.vlm.marks import draw_marks

    side, quality, seed = config.crop.size, config.jpeg_quality, config.seed
    labels: list[Mapping[str, str]] = [p.labels for p in spec.people]
    faces = [_face(p.key, p.source, p.labels) for p in spec.people]
    pixels = collage(list(crops), side)
    rows = []
    if "composite" in config.tasks:
        image = encode_jpeg(pixels, quality)
        for n, sample in enumerate(composite_samples(spec.name, labels, seed, spec.questions)):
            rows.append(row(f"{spec.name}#{sample.task}#{n}", image, sample, faces))
    if "marks" in config.tasks:
        boxes = list(enumerate(tile_boxes(len(crops), side), 1))
        marked = encode_jpeg(np.asarray(draw_marks(pixels, boxes)), quality)
        for sample in marks_samples(spec.name, labels, seed):
            rows.append(row(f"{spec.name}#{sample.task}#0", marked, sample, faces))
    return rows


def assemble(plan: Plan, objects: Sequence[Any], config: FaceJobConfig) -> dict[str, Any]:
    """The tables (pyarrow) of the shard `plan` describes: per split, its rows in the plan's order."""
    import pyarrow as pa

    tables = {}
    for split, parts in plan.items():
        pieces = []
        for part in parts:
            if isinstance(part, Slice):
                pieces.append(objects[part.table].slice(part.start, part.stop - part.start))
            else:
                crops = [objects[p.crops][p.index] for p in part.people]
                pieces.append(shard_table(collage_rows(part, crops, config)))
        tables[split] = pa.concat_tables(pieces) if pieces else shard_table([])
    return tables
