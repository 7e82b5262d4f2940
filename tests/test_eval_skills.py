"""The trained skills measured on a built dataset's held-out rows, through a stand-in OpenAI-compatible server.

The stand-in answers from each row's own target (found by image and prompt), with planted
faults: a CoT citing a wrong AU intensity, a CoT without its layout, a box number not on the
photo, a wrong person. Every figure of the report is therefore known in advance.
"""

from __future__ import annotations

import json
import re

import pytest
from eval_standin import StandIn, image_digest
from typer.testing import CliRunner

from faceqa.dev.synthetic import write_affectnet_layout
from faceqa.eval.cli import app
from faceqa.eval.skills import read_skill_rows, referent_position
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.worker import FaceJobConfig


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = write_affectnet_layout(tmp_path_factory.mktemp("affectnet"), {"train": 8, "val": 24}, size=48)
    out = tmp_path_factory.mktemp("built")
    job = FaceJobConfig(crop=CropConfig(mode="trust", size=96), tasks=("reasoning", "composite", "marks"))
    run_build([Source.parse(f"affectnet={root}")], out, BuildConfig(job=job, shard_size=50, composite_every=2),
              progress=False)
    return out


@pytest.mark.parametrize(("question", "count", "position"), [
    ("answer en what is the emotion of the person on the left?", 3, 1),
    ("answer en what is the emotion of the woman on the far right?", 4, 4),
    ("answer en what is the emotion of the second person from the right?", 4, 3),
    ("answer en what is the emotion of the third man from the left?", 4, 3),
    ("answer en what is the emotion of person 2?", 3, 2),
    ("answer en which number marks the person in the middle?", 3, 2),
    ("answer en which number marks the person who looks happy?", 3, None),
])
def test_the_position_of_a_referring_phrase_is_read_as_the_builder_meant_it(question, count, position):
    assert referent_position(question, count) == position


def test_skills_are_scored_from_what_the_server_was_asked(built, tmp_path):
    rows = {(image_digest(r.payload()), r.extra["prefix"]): r for r in read_skill_rows(built)}
    reasoning = sorted(k for k, r in rows.items() if r.extra["task"] == "reasoning")
    planted, no_layout = set(reasoning[:2]), set(reasoning[2:3])
    marks = sorted(k for k, r in rows.items() if r.extra["task"] == "marks")

    def answer(image: bytes, prompt: str) -> str:
        row = rows[(image_digest(image), prompt)]
        target = row.extra["target"]
        if (image_digest(image), prompt) in planted:
            return re.sub(r"(- AU\d+ [^\n]*?) \d\.\d\d, \w+", r"\1 0.05, weak", target, count=1)
        if (image_digest(image), prompt) in no_layout:
            return "Looks " + row.labels["reasoning"].lower()
        if (image_digest(image), prompt) == marks[0]:
            return "9"  # not on the photo: rejected
        return target

    with StandIn(answer) as server:
        result = CliRunner().invoke(app, [
            "run", str(built), "-f", "built", "--tasks", "reasoning,person,count,marks", "--endpoint", server.base_url,
            "--model", "standin", "--prompt-style", "paligemma", "-o", str(tmp_path), "--no-progress"])
        assert result.exit_code == 0, result.output
        received = list(server.received)
    assert len(received) == len(rows)
    report = json.loads((tmp_path / "report.json").read_text())["skills"]
    n = len(reasoning)
    assert report["reasoning"]["n"] == n and report["reasoning"]["parse_rate"] == pytest.approx((n - 1) / n)
    assert report["reasoning"]["conclusion_accuracy"] == pytest.approx((n - 1) / n)
    checked = report["reasoning"]["aus_checked"]
    assert report["reasoning"]["au_consistency"] == pytest.approx((checked - 2) / checked)
    assert report["marks"]["accuracy"] == pytest.approx(1 - 1 / len(marks)) and report["marks"]["by_position"]
    assert report["person"]["accuracy"] == 1.0 and set(report["person"]["by_position"]) <= {
        "1 of 2", "2 of 2", "1 of 3", "2 of 3", "3 of 3", "1 of 4", "2 of 4", "3 of 4", "4 of 4", "by attribute"}
    card = (tmp_path / "model_card.md").read_text()
    assert "| marks |" in card and "by position" in card


def test_the_skills_need_a_built_dataset_and_nothing_else(built, tmp_path):
    result = CliRunner().invoke(app, ["run", str(built), "-f", "built", "--tasks", "reasoning,gender",
                                      "--endpoint", "http://127.0.0.1:9/v1", "--model", "x", "-o", str(tmp_path)])
    said = re.sub(r"[│╭╮╰╯─\s]+", " ", result.output)
    assert result.exit_code == 2 and "run alone, on a built dataset" in said, said
