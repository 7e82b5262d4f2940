"""`faceqa build-dataset` on small fixtures the tests make: a synthetic FairFace layout, real example faces."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from faceqa.dev.synthetic import write_fairface_layout
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.dedup import NearDuplicateIndex, dhash
from faceqa.finetune.splits import assign_split
from faceqa.finetune.store import Manifest, load_built
from faceqa.finetune.tasks import dataset_action_units
from faceqa.finetune.worker import FaceJobConfig
from faceqa.prompts.taxonomy import AGE_GROUPS, normalize

TRUST = FaceJobConfig(crop=CropConfig(mode="trust", size=48), tasks=("attribute", "attributes", "composite"))


def _config(**changes) -> BuildConfig:
    return BuildConfig(**{"job": TRUST, "shard_size": 25, "composite_every": 4, **changes})


@pytest.fixture(scope="module")
def fairface(tmp_path_factory) -> Path:
    return write_fairface_layout(tmp_path_factory.mktemp("fairface"), {"train": 96, "val": 24}, size=48)


@pytest.fixture(scope="module")
def built(fairface, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("built")
    return out, run_build([Source.parse(f"fairface={fairface}")], out, _config(), progress=False)


def _rows(out: Path) -> dict[str, list[dict]]:
    data = load_built(out, cache_dir=out.parent / f"{out.name}-cache")
    return {split: list(data[split]) for split in data}


def test_rows_carry_chat_and_paligemma_forms_answered_from_ground_truth(built):
    out, summary = built
    rows = _rows(out)
    assert set(rows) == {"train", "validation"}  # FairFace's own split: val -> validation
    single = [r for split in rows.values() for r in split if r["task"] in ("race", "gender", "age_group")]
    assert single
    for row in single:
        truth = row["faces"][0][row["task"]]
        assert row["suffix"] == truth
        assert row["prefix"].startswith("answer en ")
        user, assistant = row["messages"]
        assert user["role"] == "user" and user["content"][0]["type"] == "image"
        assert assistant["role"] == "assistant"
        assert normalize(row["task"], assistant["content"][0]["text"]) == truth
        assert row["image"].size == (48, 48)
    # No emotion in FairFace: the all-attributes JSON needs all four labels, so there is none.
    assert not any(r["task"] == "attributes" for split in rows.values() for r in split)
    kept = sum(summary["balance"]["train"]["age_group"].values()) + sum(
        summary["balance"]["validation"]["age_group"].values())
    assert kept + summary["dropped"].get("near duplicate", 0) == 120
    assert set(summary["balance"]["train"]["age_group"]) == {"3-9", "20-29", "40-49", "70+"}


def test_paraphrases_vary_and_are_reproducible(built, fairface, tmp_path):
    out, _ = built
    prefixes = {r["prefix"] for r in _rows(out)["train"] if r["task"] == "age_group"}
    assert len(prefixes) >= 2
    again = tmp_path / "again"
    run_build([Source.parse(f"fairface={fairface}")], again, _config(), progress=False)
    first = {r["id"]: r["prefix"] for split in _rows(out).values() for r in split}
    second = {r["id"]: r["prefix"] for split in _rows(again).values() for r in split}
    assert first == second


def test_composites_answer_by_position_and_attribute_from_ground_truth(built):
    out, summary = built
    composites = [r for split in _rows(out).values() for r in split if r["id"].startswith("composite:")]
    assert composites
    checked = 0
    for row in composites:
        faces = row["faces"]
        assert 2 <= len(faces) <= 4
        assert row["image"].size == (48, 48)
        question = row["prefix"]
        # "the woman on the left" is the leftmost woman (the assistant's referring rules: gender first)
        gender = "Female" if " woman " in f" {question} " else "Male" if " man " in f" {question} " else None
        counted = [f for f in faces if gender is None or f["gender"] == gender]
        if row["task"].startswith("person_") and ("on the left" in question or "far left" in question):
            assert row["suffix"] == counted[0][row["task"][len("person_"):]]
            checked += 1
        elif row["task"].startswith("person_") and ("on the right" in question or "far right" in question):
            assert row["suffix"] == counted[-1][row["task"][len("person_"):]]
            checked += 1
        elif row["task"] in ("oldest", "youngest"):
            ranks = [AGE_GROUPS.index(f["age_group"]) for f in faces]
            best = max(ranks) if row["task"] == "oldest" else min(ranks)
            assert row["suffix"] == f"person {ranks.index(best) + 1}"
            checked += 1
        elif row["task"] == "count":
            assert row["suffix"] == str(len(faces))
    assert checked >= 3
    # Collages never mix splits: every face of a validation collage is a validation face.
    validation_keys = {f["key"] for r in _rows(out)["validation"] if not r["id"].startswith("composite:")
                       for f in r["faces"]}
    for row in _rows(out)["validation"]:
        if row["id"].startswith("composite:"):
            assert {f["key"] for f in row["faces"]} <= validation_keys


def test_near_duplicates_are_dropped_and_never_straddle_splits(fairface, tmp_path):
    root = tmp_path / "ff"
    shutil.copytree(fairface, root)
    # Re-encoded and slightly resized copies of training images, filed under validation.
    with open(root / "fairface_label_val.csv", "a", newline="") as handle:
        writer = csv.writer(handle)
        for i in (1, 2, 3):
            image = Image.open(root / f"train/{i}.jpg")
            image.resize((46, 46)).save(root / f"val/dup{i}.jpg", quality=70)
            with open(root / "fairface_label_train.csv") as labels:
                row = next(r for r in csv.DictReader(labels) if r["file"] == f"train/{i}.jpg")
            writer.writerow([f"val/dup{i}.jpg", row["age"], row["gender"], row["race"], "True"])
    out = tmp_path / "out"
    summary = run_build([Source.parse(f"fairface={root}")], out, _config(), progress=False)
    assert summary["dropped"]["near duplicate"] >= 3
    validation_files = {f["key"] for r in _rows(out)["validation"] for f in r["faces"]}
    assert not any("dup" in key for key in validation_files)


def test_bad_images_and_rows_are_reported_with_their_path_and_skipped(fairface, tmp_path, caplog):
    root = tmp_path / "ff"
    shutil.copytree(fairface, root)
    (root / "train/5.jpg").write_bytes(b"not a jpeg at all")
    Image.open(root / "train/6.jpg").save(root / "train/6.png")
    (root / "train/6.jpg").write_bytes((root / "train/6.png").read_bytes()[:60])  # truncated
    with open(root / "fairface_label_train.csv", "a", newline="") as handle:
        csv.writer(handle).writerow(["train/missing.jpg", "20-29", "Male", "White", "True"])
        csv.writer(handle).writerow(["train/7.jpg", "twenty", "Male", "Klingon", "True"])
    out = tmp_path / "out"
    summary = run_build([Source.parse(f"fairface={root}")], out, _config(), progress=False)
    bad = {Path(path).name: reason for path, reason in summary["bad_examples"]}
    assert set(bad) == {"5.jpg", "6.jpg"}
    assert "not an image" in bad["5.jpg"] and "truncated" in bad["6.jpg"]
    assert summary["dropped"]["bad image or row"] == 2
    assert any("5.jpg" in message for message in caplog.messages)
    assert "fairface:image missing" in summary["audit"]["skipped_rows"]
    unmapped = summary["audit"]["unmapped_labels"]
    assert any("Klingon" in key for key in unmapped) and any("twenty" in key for key in unmapped)
    kept = sum(len(v) for v in _rows(out).values())
    assert kept > 0


def test_the_summary_gives_the_answer_lengths_of_the_shards_also_when_an_older_build_did_not_record_them(
        built, fairface, tmp_path):
    from faceqa.finetune.lengths import describe

    out, summary = built
    lengths: dict[str, dict[str, list[int]]] = {}
    for split, rows in _rows(out).items():
        for row in rows:
            lengths.setdefault(split, {}).setdefault(row["task"], []).append(len(row["suffix"]))
    expected = {split: {task: describe(v) for task, v in sorted(tasks.items())} for split, tasks in lengths.items()}
    assert summary["target_chars"] == expected
    assert summary["tasks"] == {split: {task: len(v) for task, v in tasks.items()} for split, tasks in lengths.items()}
    assert {"count", "age_group"} <= set(expected["train"])  # collages and single faces

    older = tmp_path / "older"  # its manifest lines have no lengths: they are read from the shards
    shutil.copytree(out, older)
    lines = [json.loads(line) for line in (older / "manifest.jsonl").read_text().splitlines()]
    (older / "manifest.jsonl").write_text("".join(json.dumps({k: v for k, v in line.items() if k != "lengths"}) + "\n"
                                                  for line in lines))
    resumed = run_build([Source.parse(f"fairface={fairface}")], older, _config(), progress=False)
    assert resumed["target_chars"] == expected


def test_interrupted_build_resumes_without_duplicates_or_losses(fairface, tmp_path, monkeypatch):
    sources = [Source.parse(f"fairface={fairface}")]
    clean = tmp_path / "clean"
    run_build(sources, clean, _config(), progress=False)

    out = tmp_path / "out"
    real_commit = Manifest.commit
    calls = Counter()

    def crash_on_third(self, pending):
        calls["n"] += 1
        if calls["n"] == 3:  # the shard's files are written: the process dies before the manifest line
            raise KeyboardInterrupt
        return real_commit(self, pending)

    monkeypatch.setattr(Manifest, "commit", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_build(sources, out, _config(), progress=False)
    monkeypatch.setattr(Manifest, "commit", real_commit)
    with open(out / "manifest.jsonl", "ab") as handle:
        handle.write(b'{"shard": 2, "files": ["train/shard-00002.parq')  # a torn last line
    assert len(list(out.glob("*/shard-00002.parquet"))) >= 1  # the orphan the crash left

    run_build(sources, out, _config(), progress=False)
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    keys = [k for record in manifest for k in record["keys"]]
    assert len(keys) == len(set(keys)) == 120
    resumed = _rows(out)
    expected = _rows(clean)
    ids = [r["id"] for rows in resumed.values() for r in rows]
    assert len(ids) == len(set(ids))
    single = {r["id"] for rows in resumed.values() for r in rows if not r["id"].startswith("composite:")}
    assert single == {r["id"] for rows in expected.values() for r in rows if not r["id"].startswith("composite:")}


def test_a_deleted_or_truncated_shard_is_noticed_on_resume_and_its_rows_redone(built, fairface, tmp_path, caplog):
    out = tmp_path / "out"
    shutil.copytree(built[0], out)
    (out / "train/shard-00001.parquet").unlink()
    damaged = out / "train/shard-00003.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-200])
    summary = run_build([Source.parse(f"fairface={fairface}")], out, _config(), progress=False)
    assert "train/shard-00001.parquet is missing" in caplog.text and "shard-00003.parquet has" in caplog.text
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    keys = [k for record in manifest for k in record["keys"]]
    assert len(keys) == len(set(keys)) == 120
    rows = _rows(out)
    assert summary["rows"] == {split: len(r) for split, r in rows.items()}  # the summary counts what is there
    single = lambda data: {r["id"] for v in data.values() for r in v  # noqa: E731
                           if not r["id"].startswith("composite:")}
    assert single(rows) == single(_rows(built[0]))


def test_resume_refuses_other_settings(fairface, tmp_path):
    sources = [Source.parse(f"fairface={fairface}")]
    run_build(sources, tmp_path / "out", _config(), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        run_build(sources, tmp_path / "out", _config(composite_every=0), progress=False)


def test_detect_mode_crops_real_faces_and_writes_cot_from_engine_cues(examples, tmp_path):
    folder = tmp_path / "faces"
    for name, emotion in (("astronaut.png", "happy"), ("obama.jpg", "happy"), ("grace_hopper.jpg", "neutral")):
        (folder / emotion).mkdir(parents=True, exist_ok=True)
        shutil.copy(examples / name, folder / emotion / name)
    job = FaceJobConfig(crop=CropConfig(mode="detect", size=64), tasks=("attribute", "reasoning"), split="hash")
    out = tmp_path / "out"
    run_build([Source.parse(f"imagefolder={folder},attribute=emotion")], out, BuildConfig(job=job), progress=False)
    rows = [r for split in _rows(out).values() for r in split]
    cot = [r for r in rows if r["task"] == "reasoning"]
    assert len(cot) == 3
    for row in cot:
        truth = row["faces"][0]["emotion"]
        text = row["suffix"]
        assert text.startswith("Key observations:") and "Conclusion:" in text
        assert truth in text.split("Conclusion:")[1]  # the conclusion is always the ground truth
        assert "AU" in text  # observations cite the engine's geometric cues
        assert row["image"].size == (64, 64)


def test_identity_split_keeps_a_person_on_one_side(tmp_path):
    splits = {assign_split(None, f"person-{i % 7}", "hash", 0.3, seed=1) for i in range(70)}
    assert splits <= {"train", "validation"}
    for person in range(7):
        assert len({assign_split(None, f"person-{person}", "hash", 0.3, seed=1) for _ in range(3)}) == 1
    with pytest.raises(ValueError, match="no split"):
        assign_split(None, "x", "native", 0.1, 0)
    assert assign_split("val", "x", "auto", 0.1, 0) == "validation"


def test_the_shard_schema_is_the_one_datasets_derives_from_the_features():
    """Built without `datasets` (a second per worker), it must be exactly what `datasets` would write and read."""
    from datasets import Features

    from faceqa.finetune import store

    assert store.arrow_schema().equals(Features.from_dict(store.FEATURES).arrow_schema, check_metadata=True)


def test_dhash_index_finds_near_duplicates_exactly():
    import numpy as np

    rng = np.random.default_rng(0)
    image = (rng.uniform(0, 255, (32, 32, 3))).astype(np.uint8)
    index = NearDuplicateIndex(64, 4)
    assert index.add(dhash(image))
    assert not index.add(dhash(np.clip(image.astype(int) + 3, 0, 255).astype(np.uint8)))
    other = (rng.uniform(0, 255, (32, 32, 3))).astype(np.uint8)
    assert index.add(dhash(other))
    base = 0b1011 << 40
    brute = NearDuplicateIndex(64, 3)
    brute.insert(base)
    assert brute.find(base ^ 0b111) == base and brute.find(base ^ 0b1111) is None


def test_dhash_index_agrees_with_brute_force_in_small_and_large_buckets():
    """Faces' hashes crowd a few band values: those are compared through numpy, the rest in Python; same answers."""
    import random

    from faceqa.finetune import dedup

    rng = random.Random(0)
    crowded = [rng.getrandbits(51) << 13 for _ in range(8)]  # many hashes share each of these low bands
    values = [rng.choice(crowded) ^ (rng.getrandbits(64) & rng.getrandbits(64) & rng.getrandbits(64))
              for _ in range(1500)] + [rng.getrandbits(64) for _ in range(500)]
    for _ in range(1000):  # copies 3 to 6 bits away (near duplicates, or just not), from the crowd or not
        copy = rng.choice(values)
        for bit in rng.sample(range(64), rng.randint(3, 6)):
            copy ^= 1 << bit
        values.append(copy)
    index, seen = dedup.NearDuplicateIndex(64, 4), []
    for value in values:
        expected = any((value ^ other).bit_count() <= 4 for other in seen)
        found = index.find(value)
        assert (found is not None) == expected
        assert found is None or (found ^ value).bit_count() <= 4
        if not expected:
            index.insert(value)
            seen.append(value)
    assert max(len(b) for table in index._tables for b in table.values()) > dedup.VECTORIZED  # numpy was used
    assert 100 < len(seen) < len(values) - 300  # many new, many near duplicates
    with pytest.raises(ValueError, match="64 bits"):
        dedup.NearDuplicateIndex(256, 4)


def test_dataset_action_units_are_scaled_to_unit_range():
    units = dataset_action_units({"action_units": {"AU01_r": 2.5, "AU12_r": 5.0, "AU04_c": 1.0, "AU6": None}})
    assert units == {"AU1": 0.5, "AU12": 1.0, "AU4": 1.0}
    assert dataset_action_units({}) is None


def test_source_specs_parse_reader_options(tmp_path):
    spec = Source.parse(f"affectnet={tmp_path},csv_path=/d/a.csv")
    assert spec == Source("affectnet", str(tmp_path), {"csv_path": "/d/a.csv"})
    spec = Source.parse(f"csv={tmp_path},image=file,age=Age,root=/imgs")
    assert spec.options == {"root": "/imgs", "columns": {"image": "file", "age": "Age"}}
    with pytest.raises(ValueError, match="FORMAT=PATH"):
        Source.parse("fairface")
    with pytest.raises(ValueError, match="unknown format 'fairfase'"):
        Source.parse(f"fairfase={tmp_path}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Source.parse(f"fairface={tmp_path / 'nowhere'}")


def test_cli_reports_bad_input_clearly(tmp_path):
    from typer.testing import CliRunner

    from faceqa.finetune.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["build-dataset", f"fairface={tmp_path / 'x'}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["build-dataset", f"fairface={tmp_path}", "--out", str(tmp_path / "o"),
                                 "--tasks", "attribute,poetry"])
    assert result.exit_code == 2 and "unknown task(s) poetry" in result.output
    result = runner.invoke(app, ["build-dataset", f"fairface={tmp_path}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "fairface_label_train.csv" in result.output
