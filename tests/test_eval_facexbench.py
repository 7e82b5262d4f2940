"""FaceXBench: the benchmark's own file format read, asked and scored per category and sub-category.

The fixture (tests/data/facexbench, written by scripts/make_facexbench_fixture.py) holds a few
questions in the published format about the example portraits, with answers that are facts
about them, so the engine's known mistake (Grace Hopper read as male) shows in the numbers.
"""

import json
import shutil
from pathlib import Path

import pytest
from eval_standin import StandIn
from typer.testing import CliRunner

from faceqa.eval.cli import app
from faceqa.eval.facexbench import read_facexbench
from faceqa.eval.mcq_engine import EngineMCQ
from faceqa.prompts.parser import parse_choice

FIXTURE = Path(__file__).parent / "data" / "facexbench"
OPTIONS = ["30-39", "20-29", "40-49", "None of the above"]


@pytest.mark.parametrize(("text", "letter"), [
    ("A", "A"), ("(B)", "B"), ("B) 20-29", "B"), ("Answer: C", "C"), ("The answer is D.", "D"), ("**C**", "C"),
    ("c.", "C"), ("Option A", "A"), ("Based on the image, A is correct", "A"), ("20-29", "B"),
    ("None of the above", "D"), ("A woman aged 20-29", "B"),
])
def test_a_multiple_choice_answer_is_read_as_one_option_letter(text, letter):
    parsed = parse_choice(text, OPTIONS)
    assert (parsed.ok, parsed.label) == (True, letter), parsed.reason


@pytest.mark.parametrize(("text", "reason"), [
    ("A or B", "several option letters"), ("I think 30-39 rather than 40-49", "names several options"),
    ("", "empty answer"), ("I am not sure", "no option letter"), ("E", "no option letter"),
])
def test_a_hedged_or_empty_multiple_choice_answer_stays_unanswered(text, reason):
    parsed = parse_choice(text, OPTIONS)
    assert not parsed.ok and parsed.label is None and parsed.reason.startswith(reason)


def test_the_reader_turns_each_benchmark_question_into_one_record_with_the_benchmark_prompt():
    records = list(read_facexbench(FIXTURE))
    assert len(records) == 14
    lfw = next(r for r in records if r.key == "facexbench/lfw_multiple_mcq/1")
    assert lfw.labels == {"mcq": "B"}
    assert [p.name for p in lfw.extra["images"]] == ["question_1_1.png", "question_1_2.png", "question_1_3.png"]
    assert (lfw.extra["category"], lfw.extra["sub_category"]) == ("face_recognition", "hr_fr")
    assert lfw.extra["prompt"].splitlines() == [
        "Which two images show the same person?",
        "Please answer the question and provide only the correct option letter, e.g., A, B, C, D.",
        "(A) Images 1 and 2", "(B) Images 1 and 3", "(C) Images 2 and 3", "(D) Image 1 and Image 2 and Image 3"]


def test_a_broken_file_or_question_is_skipped_and_audited_while_the_rest_is_read(tmp_path):
    root = tmp_path / "fxb"
    shutil.copytree(FIXTURE, root)
    (root / "benchmark" / "broken.json").write_text("{not json")
    spec = json.loads((root / "benchmark" / "affectnet_single_mcq.json").read_text())
    spec["questions"]["1"]["options"] = ["happy", "sad"]
    (root / "benchmark" / "affectnet_single_mcq.json").write_text(json.dumps(spec))
    (root / "benchmark" / "images" / "fairface_single_mcq_race_test" / "question_1.png").unlink()
    from faceqa.datasets.readers import LabelAudit

    audit = LabelAudit()
    keys = {r.key for r in read_facexbench(root, audit)}
    assert len(keys) == 12 and "facexbench/affectnet_single_mcq/2" in keys
    skipped = audit.summary()["skipped_rows"]
    assert sum(v["count"] for v in skipped.values()) == 3, skipped


def test_the_engine_scores_the_benchmark_per_sub_category_and_abstains_where_it_has_no_model(tmp_path, engine):
    from faceqa.eval.facexbench import evaluate_facexbench

    report = evaluate_facexbench(FIXTURE, EngineMCQ(engine), tmp_path, progress=False)
    subs = {f"{c}/{s}": (v["n"], v["correct"], v["unanswered_rate"])
            for c, cat in report["categories"].items() for s, v in cat["sub_categories"].items()}
    assert subs == {
        "attributes_expression/expression": (2, 2, 0.0),
        "bias_fairness/age": (2, 2, 0.0),
        "bias_fairness/gender": (4, 3, 0.0),  # Grace Hopper is read as male
        "bias_fairness/race": (1, 0, 1.0),  # no race model: unanswered, so wrong
        "face_localization/crowd_counting": (1, 1, 0.0),
        "face_localization/headpose": (2, 2, 0.0),
        "face_recognition/hr_fr": (2, 2, 0.0),
    }
    assert report["overall"]["correct"] == 12 and report["overall"]["accuracy"] == pytest.approx(12 / 14)
    assert [(r["model"], r["accuracy"], r["note"]) for r in report["published"]] == [
        ("GPT-4o", 0.5024, "published, not measured"), ("Gemini 1.5 Pro", 0.544, "published, not measured")]
    card = (tmp_path / "model_card.md").read_text()
    assert "| bias_fairness | gender | 4 | 75.0%" in card and "published, not measured" in card


def test_an_endpoint_gets_every_image_and_the_benchmark_prompt_and_its_letters_are_scored(tmp_path):
    truth = {r.extra["prompt"]: r for r in read_facexbench(FIXTURE)}

    def answer(image: bytes, prompt: str) -> str:
        record = truth[prompt]
        if record.extra["sub_category"] == "headpose":
            return "I cannot tell."  # unparseable
        if record.extra["sub_category"] == "gender":
            return "Answer: A"  # right only when A is correct
        return f"The answer is ({record.labels['mcq']})."

    with StandIn(answer) as server:
        args = ["run", str(FIXTURE), "-f", "facexbench", "--endpoint", server.base_url, "--model", "standin",
                "-o", str(tmp_path), "--no-progress", "--concurrency", "2"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        again = CliRunner().invoke(app, args)
        assert again.exit_code == 0 and server.requests == 14  # the re-run is answered from the cache
    lfw = next(r for r in server.received if "pairs of images" in json.dumps(r))
    parts = lfw["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 4 + ["text"]
    report = json.loads((tmp_path / "report.json").read_text())
    gender = report["categories"]["bias_fairness"]["sub_categories"]["gender"]
    assert (gender["n"], gender["correct"]) == (4, 0)  # no gender question has A as its answer
    headpose = report["categories"]["face_localization"]["sub_categories"]["headpose"]
    assert (headpose["correct"], headpose["unanswered_rate"]) == (0, 1.0)
    assert report["overall"]["correct"] == 14 - 4 - 2


def test_facexbench_needs_one_model(tmp_path):
    result = CliRunner().invoke(app, ["run", str(FIXTURE), "-f", "facexbench", "-o", str(tmp_path)])
    assert result.exit_code != 0 and "--engine or with --endpoint" in result.output
