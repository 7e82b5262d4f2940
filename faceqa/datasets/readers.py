"""Readers for labelled face datasets in their native layouts.

Each reader streams `FaceRecord`s: the image path (never decoded here), the split
(spelled as in `SPLIT_NAMES`: train, validation, test, whatever the dataset calls it),
labels already mapped to the shared taxonomies, years when the dataset has them.
Native labels (names or codes: UTKFace's 0/1, RAF-DB's 1..7, AffectNet's 0..10) go
through the documented mappings of `faceqa.prompts.taxonomy.map_label`, never a
table of our own; free-text labels (generic CSV, image folders) through `normalize`.
The native label is kept in `extra["native"]` for anyone who needs the dataset's own
classes (e.g. to compare on UTKFace's coarser race set).

A label outside the taxonomies, a malformed row or a missing image is recorded in
a `LabelAudit` (counts and a few examples) so nothing disappears unnoticed: the
record is still yielded without that label, or, when the row is unusable, skipped.
"""

from __future__ import annotations

import csv
import functools
import itertools
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceqa.images import IMAGE_SUFFIXES
from faceqa.prompts.taxonomy import ATTRIBUTES

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
# One spelling of each split in every component (readers, dataset builder, evaluator, training): Hugging Face's,
# so `load_dataset` recognises a built dataset's folders. A dataset's own names map onto it.
SPLIT_NAMES = {"train": "train", "training": "train", "train_set": "train",
               "val": "validation", "valid": "validation", "validation": "validation", "val_set": "validation",
               "test": "test", "test_set": "test"}

AFFECTNET_PATH_COLUMNS = ("subDirectory_filePath", "image", "file", "path", "pth", "filename")
AU_COLUMN = re.compile(r"^AU\d+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One labelled face image. `key` is stable across machines: the source and the path under the root."""

    image: Path
    key: str
    source: str
    split: str | None
    labels: dict[str, str]
    years: float | None = None
    identity: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None  # the encoded image, when it lives inside a dataset file rather than beside it
    box: tuple[float, float, float, float] | None = None  # the labelled face (x, y, w, h) when the dataset gives it

    def payload(self) -> bytes:
        """The encoded image bytes (not decoded): `data`, else the file's contents."""
        return self.data if self.data is not None else self.image.read_bytes()


@dataclass
class LabelAudit:
    """What a read could not use: labels outside the taxonomies and rows it skipped, with examples."""

    unmapped: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # source_attribute -> what its mapping loses

    def label(self, source: str, attribute: str, raw: str, where: str, candidates: tuple[str, ...] = ()) -> None:
        key = f"{source}:{attribute}={raw!r}" + (f" (one of {' | '.join(candidates)})" if candidates else "")
        if not self.unmapped[key]:
            log.warning("label outside the taxonomy, kept unlabelled: %s (first at %s)", key, where)
        self.unmapped[key] += 1
        self._example(key, where)

    def skip(self, source: str, reason: str, where: str) -> None:
        key = f"{source}:{reason}"
        if not self.skipped[key]:
            log.warning("row skipped: %s (first at %s)", key, where)
        self.skipped[key] += 1
        self._example(key, where)

    def _example(self, key: str, where: str) -> None:
        examples = self.examples.setdefault(key, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(where)

    def summary(self) -> dict[str, Any]:
        return {
            "unmapped_labels": {k: {"count": n, "examples": self.examples[k]} for k, n in self.unmapped.items()},
            "skipped_rows": {k: {"count": n, "examples": self.examples[k]} for k, n in self.skipped.items()},
            "mapping_notes": dict(self.notes),
        }


class _Labeller:
    """Maps one row's raw labels to ours, auditing what falls outside.

    A known dataset goes through its documented mapping (`map_label`, per attribute so
    shared codes are unambiguous); anything else is free text for `normalize`.
    """

    def __init__(self, source: str, audit: LabelAudit, dataset: bool):
        from faceqa.prompts import taxonomy

        self.source, self.audit, self.dataset, self.taxonomy = source, audit, dataset, taxonomy

    def __call__(self, raw: dict[str, str | None], where: str) -> tuple[dict[str, str], dict[str, str]]:
        """(our labels, the native values they came from)."""
        labels, native = {}, {}
        for attribute, value in raw.items():
            if value is None or not str(value).strip():
                continue
            value = native[attribute] = str(value).strip()
            table = f"{self.source}_{attribute}"
            if self.dataset:
                candidates = self.taxonomy.candidate_labels(table, value)
                canonical = candidates[0] if len(candidates) == 1 else None
            else:
                candidates, canonical = (), self.taxonomy.normalize(attribute, value)
            if canonical is None:
                self.audit.label(self.source, attribute, value, where, candidates)
                if self.dataset and table not in self.audit.notes:
                    self.audit.notes[table] = self.taxonomy.mapping_note(table)
            else:
                labels[attribute] = canonical
        return labels, native


def _age_group(years: float) -> str:
    from faceqa.prompts.taxonomy import age_group

    return age_group(years)


def _key(source: str, path: Path, root: Path) -> str:
    """`source:` and the image's real path under the dataset's real root (as given, if it lies outside)."""
    real, base = _real(str(path)), _resolved(str(root))
    relative = real[len(base) + 1:] if real.startswith(base + os.sep) else str(path)
    return f"{source}:{relative.replace(os.sep, '/')}"


def _real(path: str) -> str:
    """`os.path.realpath(path)`, its folder resolved once per folder: a dataset has a few folders and many files.

    os.path rather than pathlib: this runs once per row, on the build's driver."""
    folder, name = os.path.split(path)
    if name in ("", ".", "..") or os.path.islink(path):
        return os.path.realpath(path)
    return os.path.join(_resolved(folder), name)


@functools.lru_cache(maxsize=4096)
def _resolved(folder: str) -> str:
    """A folder (a dataset root, or one of its image folders), resolved once per read rather than once per row."""
    return os.path.realpath(folder)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        yield from enumerate(csv.DictReader(handle), start=2)


def _require(path: Path, columns: Iterable[str]) -> None:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}")


def _split(value: str) -> str | None:
    """A CSV's split column in our spelling; a name we do not know is kept for the caller to judge."""
    return SPLIT_NAMES.get(value.strip().lower(), value) if value else None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def read_fairface(root: str | Path, splits: Iterable[str] = ("train", "validation"),
                  audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """FairFace: `fairface_label_{train,val}.csv` (file, age, gender, race, service_test) beside the images."""
    root, audit = Path(root), audit if audit is not None else LabelAudit()
    labeller = _Labeller("fairface", audit, dataset=True)
    for split in (SPLIT_NAMES.get(s.lower(), s) for s in splits):
        table = root / f"fairface_label_{'val' if split == 'validation' else split}.csv"
        if not table.exists():
            raise FileNotFoundError(f"{table}: FairFace label file not found")
        _require(table, ("file", "age", "gender", "race"))
        for line, row in _rows(table):
            where = f"{table.name}:{line}"
            if any(row.get(c) is None for c in ("file", "age", "gender", "race")):
                audit.skip("fairface", "row has too few columns", where)
                continue
            image = root / row["file"]
            if not image.is_file():
                audit.skip("fairface", "image missing", f"{where} {row['file']}")
                continue
            labels, native = labeller({"age_group": row["age"], "gender": row["gender"], "race": row["race"]}, where)
            extra: dict[str, Any] = {"native": native}
            if row.get("service_test") is not None:
                extra["service_test"] = row["service_test"].strip().lower() == "true"
            yield FaceRecord(image, _key("fairface", image, root), "fairface", split, labels, extra=extra)


def read_utkface(root: str | Path, audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """UTKFace: labels in file names `age_gender_race_datetime.jpg` (also `.jpg.chip.jpg`), any depth."""
    root, audit = Path(root), audit if audit is not None else LabelAudit()
    labeller = _Labeller("utkface", audit, dataset=True)
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        parts = image.name.split(".")[0].split("_")
        if len(parts) < 4 or not parts[0].isdigit():
            audit.skip("utkface", "file name not age_gender_race_date", image.name)
            continue
        age, gender, race = parts[:3]
        labels, native = labeller({"gender": gender, "race": race}, image.name)
        labels["age_group"] = _age_group(float(age))
        yield FaceRecord(image, _key("utkface", image, root), "utkface", None, labels, years=float(age),
                         extra={"native": native, "datetime": parts[3]})


def read_rafdb(root: str | Path, variant: str = "aligned", audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """RAF-DB basic: `EmoLabel/list_patition_label.txt` ("train_00001.jpg 5") and `Image/{aligned,original}/`."""
    root, audit = Path(root), audit if audit is not None else LabelAudit()
    if variant not in ("aligned", "original"):
        raise ValueError(f"RAF-DB variant must be 'aligned' or 'original', got {variant!r}")
    table = next((p for p in (root / "EmoLabel" / "list_patition_label.txt", root / "list_patition_label.txt")
                  if p.exists()), None)
    if table is None:
        raise FileNotFoundError(f"{root}: no EmoLabel/list_patition_label.txt (RAF-DB basic)")
    images = next((p for p in (root / "Image" / variant, root / variant) if p.is_dir()), None)
    if images is None:
        raise FileNotFoundError(f"{root}: no Image/{variant}/ folder (RAF-DB basic)")
    labeller = _Labeller("rafdb", audit, dataset=True)
    with table.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{table.name}:{line}"
            fields = text.split()
            if len(fields) != 2:
                audit.skip("rafdb", "line not 'name label'", where)
                continue
            name, code = fields
            stem = Path(name).stem
            image = images / (f"{stem}_aligned.jpg" if variant == "aligned" else name)
            if not image.is_file():
                audit.skip("rafdb", "image missing", f"{where} {image.name}")
                continue
            labels, native = labeller({"emotion": code}, where)
            yield FaceRecord(image, _key("rafdb", image, root), "rafdb", stem.split("_")[0], labels,
                             extra={"native": native})


AFFECTNET_TABLES = {"train": "training.csv", "validation": "validation.csv"}
AFFECTNET_IMAGES = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
AFFECTNET_BOX = ("face_x", "face_y", "face_width", "face_height")


def read_affectnet(root: str | Path, csv_path: str | Path | None = None,
                   splits: Iterable[str] = ("train", "validation"), max_per_class: int | str | None = None,
                   audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """AffectNet: the 2017 release, one of its CSVs, or per-class folders (`[split/]class/*.jpg`).

    The release is `Manually_Annotated_Images/<dir>/<file>.jpg` with `training.csv` and
    `validation.csv` (beside it or in `Manually_Annotated_file_lists/`), whose
    `subDirectory_filePath` is relative to the images folder and whose
    face_x/y/width/height box the labelled face (the images are not face crops). The
    validation CSV is the split everyone reports on (the test set was never released).
    Codes 8-10 (None, Uncertain, Non-Face) are no emotion, and code 10 not even a face:
    such rows are skipped and counted, never yielded as faces. `max_per_class` keeps at
    most that many rows of each expression per split (the first in file order),
    against the release's skew (about 134k Happy and 75k Neutral vs 4k Contempt).
    Valence/arousal and AU columns (`AU1`, `AU12_r`, ...) go to `extra`.
    """
    root, audit = Path(root), audit if audit is not None else LabelAudit()
    cap = int(max_per_class) if max_per_class not in (None, "") else None
    if cap is not None and cap < 1:
        raise ValueError(f"max_per_class must be at least 1, got {cap}")
    tables = [(None, Path(csv_path))] if csv_path is not None else _affectnet_tables(root, tuple(splits))
    if not tables:
        records = _image_folder(root, "emotion", "affectnet", _Labeller("affectnet", audit, dataset=True))
    else:
        images = next((root / p for p in AFFECTNET_IMAGES if (root / p).is_dir()), root)
        records = itertools.chain.from_iterable(_affectnet_csv(images, table, split, audit)
                                                for split, table in tables)
    kept: Counter = Counter()
    for record in records:
        emotion = record.labels.get("emotion")
        if emotion is None:
            audit.skip("affectnet", "expression 8-10 or unknown (None, Uncertain, Non-Face): not a labelled face",
                       record.key)
            continue
        if cap is not None:
            kept[record.split, emotion] += 1
            if kept[record.split, emotion] > cap:
                audit.skip("affectnet", f"over max_per_class={cap}", record.key)
                continue
        yield record


def _affectnet_tables(root: Path, splits: tuple[str, ...]) -> list[tuple[str | None, Path]]:
    """The release's CSVs for `splits`, in its layout; none when `root` is a per-class folder tree."""
    found: list[tuple[str | None, Path]] = []
    for split in (SPLIT_NAMES.get(s.lower(), s) for s in splits):
        name = AFFECTNET_TABLES.get(split)
        if name is None:
            raise ValueError(f"AffectNet splits are {', '.join(AFFECTNET_TABLES)}, got {split!r}")
        table = next((p for p in (root / name, root / "Manually_Annotated_file_lists" / name) if p.is_file()), None)
        if table is not None:
            found.append((split, table))
    return found


def _affectnet_csv(images: Path, table: Path, split: str | None, audit: LabelAudit) -> Iterator[FaceRecord]:
    with table.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    path_column = next((c for c in AFFECTNET_PATH_COLUMNS if c in header), None)
    if path_column is None or "expression" not in header:
        raise ValueError(f"{table}: needs an 'expression' column and an image column "
                         f"({', '.join(AFFECTNET_PATH_COLUMNS)}); found {', '.join(header)}")
    au_columns = [c for c in header if AU_COLUMN.match(c)]
    labeller = _Labeller("affectnet", audit, dataset=True)
    split = split or SPLIT_NAMES.get(table.stem.lower())
    for line, row in _rows(table):
        where = f"{table.name}:{line}"
        if row.get(path_column) is None or row.get("expression") is None:
            audit.skip("affectnet", "row has too few columns", where)
            continue
        image = images / row[path_column]
        if not image.is_file():
            audit.skip("affectnet", "image missing", f"{where} {row[path_column]}")
            continue
        try:
            box = _box(row)
        except ValueError:
            audit.skip("affectnet", "face box unreadable (face_x/y/width/height)", where)
            continue
        labels, native = labeller({"emotion": row["expression"]}, where)
        extra: dict[str, Any] = {"native": native}
        extra.update({k: v for k in ("valence", "arousal") if (v := _float(row.get(k))) is not None})
        units = {c: v for c in au_columns if (v := _float(row[c])) is not None}
        if units:
            extra["action_units"] = units
        yield FaceRecord(image, _key("affectnet", image, images), "affectnet", row.get("split") or split, labels,
                         extra=extra, box=box)


def _box(row: dict[str, str]) -> tuple[float, float, float, float] | None:
    """The CSV's face box, None when the CSV has no box columns; ValueError when they hold no usable box.

    A release image is not a face crop, so a row whose box cannot be read is skipped
    rather than cropped as a whole image.
    """
    if not any(c in row for c in AFFECTNET_BOX):
        return None
    x, y, w, h = (float(row.get(c) or "nan") for c in AFFECTNET_BOX)
    if not (w > 0 and h > 0 and x >= 0 and y >= 0):  # also false for NaN
        raise ValueError(f"no face box in {[row.get(c) for c in AFFECTNET_BOX]}")
    return x, y, w, h


def read_image_folder(root: str | Path, attribute: str, source: str = "imagefolder",
                      audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """Generic ImageFolder: `[split/]label/*.jpg`, labels in free text normalised to `attribute`'s taxonomy."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {', '.join(ATTRIBUTES)}, got {attribute!r}")
    audit = audit if audit is not None else LabelAudit()
    yield from _image_folder(Path(root), attribute, source, _Labeller(source, audit, dataset=False))




def _image_folder(root: Path, attribute: str, source: str, labeller: _Labeller) -> Iterator[FaceRecord]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    top = sorted(p for p in root.iterdir() if p.is_dir())
    has_splits = bool(top) and all(p.name.lower() in SPLIT_NAMES for p in top)
    for split_dir in top if has_splits else [root]:
        split = SPLIT_NAMES[split_dir.name.lower()] if has_splits else None
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for image in sorted(class_dir.rglob("*")):
                if image.suffix.lower() not in IMAGE_SUFFIXES or not image.is_file():
                    continue
                key = _key(source, image, root)
                labels, native = labeller({attribute: class_dir.name}, key)
                yield FaceRecord(image, key, source, split, labels, extra={"native": native})


CSV_FIELDS = ("image", "race", "gender", "age_group", "emotion", "age", "split", "identity")


def read_csv(path: str | Path, columns: dict[str, str], root: str | Path | None = None, source: str = "csv",
             audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """Generic CSV. `columns` maps our fields (image, race, gender, age_group, emotion, age, split, identity)
    to the file's column names; labels are free text normalised to the taxonomies, `age` is in years.
    """
    table, audit = Path(path), audit if audit is not None else LabelAudit()
    root = Path(root) if root is not None else table.parent
    unknown = set(columns) - set(CSV_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; use {', '.join(CSV_FIELDS)}")
    if "image" not in columns:
        raise ValueError("the column mapping needs an 'image' entry")
    _require(table, columns.values())
    labeller = _Labeller(source, audit, dataset=False)
    for line, row in _rows(table):
        where = f"{table.name}:{line}"
        image = root / row[columns["image"]]
        if not image.is_file():
            audit.skip(source, "image missing", f"{where} {row[columns['image']]}")
            continue
        labels, native = labeller({a: row[columns[a]] for a in ATTRIBUTES if a in columns}, where)
        years = _float(row[columns["age"]]) if "age" in columns else None
        if "age" in columns and years is None and row[columns["age"]].strip():
            audit.label(source, "age", row[columns["age"]], where)
        if years is not None and years >= 0:
            labels.setdefault("age_group", _age_group(years))
        yield FaceRecord(image, _key(source, image, root), source,
                         _split(row[columns["split"]]) if "split" in columns else None, labels, years=years,
                         identity=row[columns["identity"]] or None if "identity" in columns else None,
                         extra={"native": native})


def built_rows(root: str | Path, split: str, columns: list[str]) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """A built dataset's split as (shard, a batch of its rows with `columns`), shard after shard."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading a built dataset needs pyarrow (pip install datasets)") from None
    shards = sorted((Path(root) / split).glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{Path(root) / split}: no Parquet shards (a `faceqa build-dataset` output?)")
    for shard in shards:
        for batch in pq.ParquetFile(shard).iter_batches(columns=columns, batch_size=256):
            yield shard, batch.to_pylist()


def read_built(root: str | Path, split: str = "validation", audit: LabelAudit | None = None) -> Iterator[FaceRecord]:
    """A dataset written by `faceqa build-dataset`: its single-face rows' crops, once per face.

    The crop travels in `data` (encoded, not decoded); the key is prefixed `built:` so
    answers about crops are never mistaken, in a shared cache, for answers about originals.
    """
    seen: set[str] = set()
    for shard, rows in built_rows(root, split, ["image", "faces"]):
        for row in rows:
            if len(row["faces"]) != 1 or row["faces"][0]["key"] in seen:
                continue  # collages have no single subject; other tasks repeat the same crop
            face = row["faces"][0]
            seen.add(face["key"])
            labels = {a: face[a] for a in ATTRIBUTES if face.get(a)}
            yield FaceRecord(shard, f"built:{face['key']}", face["source"], split, labels,
                             data=row["image"]["bytes"])


FORMATS = ("fairface", "utkface", "affectnet", "rafdb", "csv", "imagefolder", "built")


def read_dataset(format: str, path: str | Path, audit: LabelAudit | None = None,
                 **options: Any) -> Iterator[FaceRecord]:
    """One entry point for the CLI: `format` names a reader above, `options` are its keyword arguments."""
    readers: dict[str, Callable[..., Iterator[FaceRecord]]] = {
        "fairface": read_fairface, "utkface": read_utkface, "affectnet": read_affectnet, "rafdb": read_rafdb,
        "csv": read_csv, "imagefolder": read_image_folder, "built": read_built,
    }
    if format not in readers:
        raise ValueError(f"unknown dataset format {format!r}; use one of {', '.join(FORMATS)}")
    return readers[format](path, audit=audit, **options)
