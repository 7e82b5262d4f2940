"""The README's real recipe at fixture scale: FairFace + AffectNet in their release layouts through the builder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affectnet_release import FACE, write_affectnet_release
from typer.testing import CliRunner

from faceqa.dev.synthetic import write_fairface_layout
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.cli import app
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.store import load_built
from faceqa.finetune.worker import FaceJobConfig
from faceqa.images import load_image

TASKS = ("attribute", "attributes", "composite")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    # training: every code 0-10 twice; validation: the eight emotions once
    return write_affectnet_release(tmp_path_factory.mktemp("affectnet"), training=list(range(11)) * 2,
                                   validation=list(range(8)))


@pytest.fixture(scope="module")
def recipe(release, tmp_path_factory) -> tuple[Path, dict]:
    fairface = write_fairface_layout(tmp_path_factory.mktemp("fairface"), {"train": 24, "val": 8}, size=48)
    out = tmp_path_factory.mktemp("built")
    job = FaceJobConfig(crop=CropConfig(mode="trust", size=48), tasks=TASKS)
    config = BuildConfig(job=job, composite_every=2, dedup_distance=-1)
    sources = [Source.parse(f"fairface={fairface}"), Source.parse(f"affectnet={release}")]
    return out, run_build(sources, out, config, progress=False)


def _rows(out: Path) -> dict[str, list[dict]]:
    data = load_built(out, cache_dir=out.parent / f"{out.name}-cache")
    return {split: list(data[split]) for split in data}


def _share_of_face_colour(image) -> float:
    rgb = np.asarray(image.convert("RGB"), dtype=int)
    return float((np.abs(rgb - np.array(FACE)).sum(axis=2) < 60).mean())


def test_affectnet_release_rows_are_cropped_at_their_face_box(recipe):
    out, _ = recipe
    affectnet = [r for rows in _rows(out).values() for r in rows
                 if r["task"] == "emotion" and r["faces"][0]["source"] == "affectnet"]
    assert affectnet
    # The box is 30x34 in a 96x64 photo: its crop is mostly face (~40%), the whole photo's would be ~11%.
    assert all(_share_of_face_colour(r["image"]) > 0.3 for r in affectnet)


def test_affectnet_validation_csv_becomes_the_validation_split(recipe):
    out, summary = recipe
    assert summary["balance"]["validation"]["emotion"] == {e: 1 for e in (
        "Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")}
    assert sum(summary["balance"]["train"]["emotion"].values()) == 16  # 2 x 8 emotions; 8-10 are not faces


def test_no_none_uncertain_or_non_face_image_enters_any_row(recipe, release):
    out, summary = recipe
    non_faces = {f"affectnet:{r.image.relative_to(release / 'Manually_Annotated_Images').as_posix()}"
                 for r in _release_records(release) if r.extra["native"]["emotion"] in ("8", "9", "10")}
    assert len(non_faces) == 6
    keys = {face["key"] for rows in _rows(out).values() for r in rows for face in r["faces"]}
    assert keys and not keys & non_faces
    composites = [r for rows in _rows(out).values() for r in rows if len(r["faces"]) > 1]
    assert composites and all(all(f["emotion"] or f["race"] for f in r["faces"]) for r in composites)
    assert summary["audit"]["skipped_rows"][
        "affectnet:expression 8-10 or unknown (None, Uncertain, Non-Face): not a labelled face"]["count"] == 6


def _release_records(release: Path):
    """Every CSV row of the fixture, 8-10 included (read with the csv module, not the reader under test)."""
    import csv
    from types import SimpleNamespace

    for name in ("training.csv", "validation.csv"):
        with open(release / "Manually_Annotated_file_lists" / name, newline="") as handle:
            for row in csv.DictReader(handle):
                yield SimpleNamespace(image=release / "Manually_Annotated_Images" / row["subDirectory_filePath"],
                                      extra={"native": {"emotion": row["expression"]}})


def test_a_task_no_source_can_make_is_said_not_silently_empty(recipe):
    _, summary = recipe
    assert not any("attributes" in tasks for tasks in summary["tasks"].values())
    assert any("'attributes' made 0 rows" in w for w in summary["warnings"])
    assert json.loads((recipe[0] / "summary.json").read_text())["warnings"] == summary["warnings"]


def test_build_reports_target_lengths_per_task(recipe):
    out, summary = recipe
    stats = summary["target_chars"]["train"]
    rows = [r for r in _rows(out)["train"] if r["task"] == "race"]
    assert stats["race"]["n"] == len(rows)
    assert stats["race"]["max"] == max(len(r["suffix"]) for r in rows)
    assert set(stats["emotion"]) == {"n", "mean", "p50", "p95", "max"}


def test_a_reader_that_produces_no_rows_fails_the_build(tmp_path):
    (tmp_path / "affectnet").mkdir()
    (tmp_path / "affectnet" / "Manually_Annotated_Images").mkdir()
    write_affectnet_release(tmp_path / "wrong", training=[1], validation=[1])
    (tmp_path / "wrong" / "Manually_Annotated_Images").rename(tmp_path / "wrong" / "elsewhere")
    runner = CliRunner()
    for root in (tmp_path / "affectnet", tmp_path / "wrong"):
        result = runner.invoke(app, ["build-dataset", f"affectnet={root}", "--out", str(tmp_path / f"o-{root.name}"),
                                     "--crop", "trust", "--no-progress"])
        assert result.exit_code == 2, result.output
        assert "produced no rows" in result.output
    assert "image missing x2" in result.output


def test_the_training_crop_is_the_serving_crop(release):
    """One function: the pixels the builder trains on are the pixels the VLM attribute engine sends."""
    from faceqa.finetune.crop import FaceCropper
    from faceqa.schema import FaceReport, ImageInfo, ImageReport
    from faceqa.vlm.attributes import VLMAttributes, VLMAttributesConfig
    from faceqa.vlm.base import Completion, VLMBackend

    class Recorder(VLMBackend):
        sent: list = []

        def complete(self, images, prompt, params=None):
            self.sent.append(images[0])
            return Completion("Happiness", 1, 1, logprob=-0.1)

    record = next(iter(_release_records(release)))
    rgb = load_image(record.image)
    box = (40, 10, 30, 34)
    trained = FaceCropper(CropConfig(mode="trust", size=64))(rgb, box=box).rgb
    face = FaceReport(id=1, box=box, score=0.9, landmarks5=[(0.0, 0.0)] * 5)
    report = ImageReport(image=ImageInfo(width=rgb.shape[1], height=rgb.shape[0]), faces=[face])
    backend = Recorder()
    VLMAttributes(backend, VLMAttributesConfig(attributes=("emotion",), crop_size=64)).fill(rgb, report)
    assert trained.shape == (64, 64, 3)
    assert len(backend.sent) == 1 and (backend.sent[0] == trained).all()


def test_eval_reads_the_affectnet_release_validation_split(release, tmp_path):
    from faceqa.datasets.readers import LabelAudit
    from faceqa.eval.cli import _records

    records = list(_records(release, "affectnet", None, None, None, None, "aligned", LabelAudit()))
    assert len(records) == 8 and {r.split for r in records} == {"validation"}


def test_reasoning_targets_speak_about_the_photo_not_the_annotation():
    """Every conclusion a training target can have (each label against each AU pattern) avoids annotation words."""
    import re

    from faceqa.finetune.tasks import face_samples
    from faceqa.prompts.taxonomy import EMOTIONS

    patterns = [{}, {"AU12": 0.9, "AU6": 0.8}, {"AU1": 0.7, "AU4": 0.6, "AU15": 0.9},
                {"AU4": 0.9, "AU5": 0.8, "AU23": 0.8}, {"AU1": 0.9, "AU2": 0.9, "AU5": 0.9, "AU26": 0.9},
                {"AU9": 0.9, "AU15": 0.8}]
    texts = {s.paligemma_answer for emotion in EMOTIONS for units in patterns
             for s in face_samples("k", {"emotion": emotion}, ("reasoning",), 0, units, geometric=False)}
    assert len(texts) >= len(EMOTIONS) * 2
    leaks = [t for t in texts if re.search(r"annotat|label|dataset|ground truth", t, re.IGNORECASE)]
    assert leaks == []


def test_reasoning_targets_are_the_concise_exp_cot_the_parser_and_the_check_read():
    """The trained target cites only the strongest AUs, keeps the three-part layout and concludes the label."""
    from faceqa.finetune.tasks import face_samples
    from faceqa.prompts.cot import compose_cot
    from faceqa.prompts.parser import parse_reasoning
    from faceqa.vlm.cot_check import check_cot

    units = {"AU1": 0.8, "AU2": 0.8, "AU5": 0.6, "AU26": 0.7, "AU12": 0.1}
    (sample,) = face_samples("k", {"emotion": "Surprise"}, ("reasoning",), 0, units, geometric=False)
    target = sample.paligemma_answer
    assert target == sample.chat_answer == compose_cot(units, "Surprise").brief
    assert len(target) < len(compose_cot(units, "Surprise").text) / 2
    parsed = parse_reasoning(target)
    assert parsed.complete and parsed.emotion.label == "Surprise"
    observations = parsed.sections["Key observations"].splitlines()
    assert observations == ["- AU1 inner brow raiser 0.80, strong", "- AU2 outer brow raiser 0.80, strong",
                            "- AU26 jaw drop 0.70, marked"]  # the 3 strongest; AU5 and the weak AU12 left out
    assert "prototype of surprise" in parsed.sections["Overall emotional interpretation"]
    checked = check_cot(target, units, None)
    assert checked.parsed_ok and checked.consistency == 1.0 and checked.checkable == 3


def test_a_concise_target_says_when_the_units_point_elsewhere_or_nowhere():
    from faceqa.prompts.cot import compose_cot
    from faceqa.prompts.parser import parse_reasoning

    elsewhere = compose_cot({"AU6": 0.8, "AU12": 0.9}, "Sadness").brief
    assert "point more to happiness than to sadness" in elsewhere
    assert parse_reasoning(elsewhere).emotion.label == "Sadness"
    nowhere = compose_cot({}, "Neutral").brief
    assert "No action unit reaches 0.20" in nowhere and parse_reasoning(nowhere).emotion.label == "Neutral"


def test_max_task_rows_caps_only_the_named_tasks_and_keeps_row_order():
    from faceqa.finetune.train import _capped

    tasks = ["reasoning", "marks", "reasoning", "person_emotion", "reasoning", "marks"]
    assert _capped(tasks, {"reasoning": 2}) == [0, 1, 2, 3, 5]
    assert _capped(tasks, {"reasoning": 0, "marks": 1}) == [1, 3]
    assert _capped(tasks, {}) == list(range(len(tasks)))


def test_cpu_threads_hold_for_the_fine_tune_only(monkeypatch, tmp_path):
    import torch

    from faceqa.finetune import train

    seen = []
    monkeypatch.setattr(train, "_run_finetune", lambda config: seen.append(torch.get_num_threads()) or {})
    before = torch.get_num_threads()
    config = train.FinetuneConfig(model="m", dataset="d", output_dir=str(tmp_path), cpu_threads=1)
    train.run_finetune(config)
    assert seen == [1] and torch.get_num_threads() == before
