"""Set-of-marks: one drawing of the engine's numbered boxes for the page, the VLM and the training collages."""

from __future__ import annotations

import re

import numpy as np
import pytest

from faceqa.app.draw import annotate
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.collage import tile_boxes
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.store import load_built
from faceqa.finetune.worker import FaceJobConfig
from faceqa.images import load_image
from faceqa.vlm.marks import HIGHLIGHT, PLAIN, draw_marks, marked_photo, open_prompt, read_mark


def test_each_box_is_outlined_and_numbered_and_highlighted_ones_stand_out():
    image = np.full((120, 200, 3), 255, dtype=np.uint8)
    marked = np.asarray(draw_marks(image, [(1, (20, 40, 50, 60)), (2, (120, 40, 50, 60))], highlight={2}))
    assert tuple(marked[70, 20]) == PLAIN and tuple(marked[70, 120]) == HIGHLIGHT  # left edges of the boxes
    assert tuple(marked[70, 45]) == (255, 255, 255)  # inside is untouched
    tag = marked[20:40, 20:40].reshape(-1, 3)
    assert (tag == PLAIN).all(axis=1).any() and (tag == 0).all(axis=1).any()  # a coloured tag with a black number


def test_the_chat_page_draws_exactly_the_marks_the_vlm_is_shown(examples, group_report):
    rgb = load_image(examples / "group.jpg")
    page = np.asarray(annotate(rgb, group_report, {3}))
    assert np.array_equal(page, np.asarray(marked_photo(rgb, group_report, {3})))
    for face in group_report.faces:
        x, y, w, h = face.box
        assert tuple(page[y + h // 2, x]) == (HIGHLIGHT if face.id == 3 else PLAIN)


@pytest.mark.parametrize(("text", "expected", "reason"), [
    ("3", 3, "box 3"), ("Box 2.", 2, "box 2"), ("The person is number 4", 4, "box 4"),
    ("7", None, "the answer names box 7, which is not on the photo (boxes 1, 2, 3, 4)"),
    ("1 or 2", None, "the answer names several numbers (1, 2)"), ("", None, "the answer names no box number"),
])
def test_a_box_number_is_read_back_and_a_number_not_drawn_is_rejected(text, expected, reason):
    reading = read_mark(text, {1, 2, 3, 4})
    assert (reading.id, reading.reason) == (expected, reason)


def test_an_open_question_carries_every_face_of_the_report_as_context(group_report):
    prompt = open_prompt("Who wears glasses?", group_report)
    assert "numbered 1, 2, 3 and 4, left to right" in prompt
    assert "- 2: apparently female" in prompt and prompt.rstrip().endswith("Who wears glasses?")
    assert len(re.findall(r"^- \d: ", prompt, flags=re.M)) == 4


def test_the_dataset_builder_trains_marks_on_collages_drawn_by_the_same_function(tmp_path):
    from faceqa.dev.synthetic import write_fairface_layout

    fairface = write_fairface_layout(tmp_path / "ff", {"train": 40, "val": 8}, size=48)
    job = FaceJobConfig(crop=CropConfig(mode="trust", size=96), tasks=("attribute", "marks"))
    run_build([Source.parse(f"fairface={fairface}")], tmp_path / "out",
              BuildConfig(job=job, shard_size=25, composite_every=4), progress=False)
    data = load_built(tmp_path / "out", cache_dir=tmp_path / "cache")
    rows = [r for split in data for r in data[split] if r["task"] == "marks"]
    assert len(rows) >= 5 and not any(r["task"].startswith("person_") for split in data for r in data[split])
    for row in rows:
        count, answer = len(row["faces"]), int(row["suffix"])
        assert 1 <= answer <= count and row["messages"][1]["content"][0]["text"] == row["suffix"]
        pixels = np.asarray(row["image"].convert("RGB"))
        for x, y, _, _ in tile_boxes(count, 96):
            tag = pixels[y - 4:y - 1, x + 1:x + 3].reshape(-1, 3).mean(axis=0)  # the number's tag above the box
            assert np.abs(tag - PLAIN).max() < 30, (row["id"], tag)
        question = row["prefix"]
        if re.search(r"(on the|far) left", question):
            assert answer == 1
        elif re.search(r"(on the|far) right", question):
            assert answer == count
        elif match := re.search(r"person (\d)", question):
            assert answer == int(match.group(1))
