"""`faceqa eval run` end to end: a FairFace-layout fixture through a real OpenAI-compatible HTTP endpoint
(the stand-in server, spoken to by the official client) and through the embedded engine.

The stand-in answers from each image's known label, with a fixed pattern of wrong and
unparseable answers, so every metric in the report is known in advance.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from eval_standin import StandIn, image_digest
from PIL import Image
from typer.testing import CliRunner

from faceqa.eval.cli import app
from faceqa.prompts import templates
from faceqa.prompts.taxonomy import labels

TASKS = ("race", "gender", "age_group")
RACES, GENDERS, AGES = labels("race"), labels("gender"), labels("age_group")


def fairface_fixture(root: Path, n: int) -> dict[str, dict[str, str]]:
    """n tiny distinct images in FairFace's layout; returns image sha256 -> labels."""
    (root / "val").mkdir(parents=True)
    truth, rows = {}, []
    for i in range(n):
        path = root / "val" / f"{i}.png"
        Image.fromarray(np.full((6, 6, 3), (i * 7 % 256, i * 13 % 256, i), dtype=np.uint8)).save(path)
        row = {"race": RACES[i % 7], "gender": GENDERS[i % 2], "age_group": AGES[i % 9]}
        rows.append([f"val/{i}.png", "more than 70" if row["age_group"] == "70+" else row["age_group"],
                     row["gender"], row["race"], "True"])
        truth[image_digest(path.read_bytes())] = {**row, "index": i}
    with (root / "fairface_label_val.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", "age", "gender", "race", "service_test"], *rows])
    return truth


def answerer(truth):
    """Right for most images; wrong when index % 10 == 3, unparseable when index % 10 == 7."""
    asked = {templates.question(task, "chat"): task for task in TASKS}

    def answer(image: bytes, prompt: str) -> str:
        item, task = truth[image_digest(image)], asked[prompt]
        options = labels(task)
        if item["index"] % 10 == 3:
            return options[(options.index(item[task]) + 1) % len(options)]
        if item["index"] % 10 == 7:
            return "I would rather not say."
        return f"The person appears to be {item[task]}."

    return answer


def run_cli(dataset: Path, out: Path, *model: str, tasks=TASKS):
    result = CliRunner().invoke(app, ["run", str(dataset), "--format", "fairface", "--out", str(out),
                                      "--tasks", ",".join(tasks), "--min-group-size", "3", "--bootstrap", "200",
                                      "--no-progress", *model])
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


def without_timing(report):
    """The report minus what differs between two runs of the same predictions: call timings and counts."""
    report = json.loads(json.dumps(report))
    report.pop("run")
    report.pop("latency")
    for task in report["tasks"].values():
        task.pop("latency")
    return report


def test_endpoint_run_writes_known_metrics_card_and_plots(tmp_path):
    truth = fairface_fixture(tmp_path / "ff", 30)
    with StandIn(answerer(truth)) as server:
        args = ("--endpoint", server.base_url, "--model", "standin", "--concurrency", "4")
        report = run_cli(tmp_path / "ff", tmp_path / "run", *args)
        assert server.requests == 90 and max(server.hits.values()) == 1

        for task in TASKS:
            m = report["tasks"][task]
            assert m["n"] == 30
            assert m["accuracy"] == pytest.approx(24 / 30)  # 3 wrong + 3 unanswered
            assert m["unanswered_rate"] == pytest.approx(3 / 30)
            assert sum(map(sum, m["confusion"]["matrix"])) == 30
            assert m["unanswered_examples"][0]["text"] == "I would rather not say."
        # Index 3, 13, 23 answer wrong, 7, 17, 27 unanswered; groups are cut by the items' own labels.
        female = report["tasks"]["gender"]["groups"]["gender"]["groups"]["Female"]
        assert female["n"] == 15 and female["accuracy"] == pytest.approx(9 / 15)  # odd indices: 3,13,23,7,17,27
        assert report["tasks"]["gender"]["groups"]["gender"]["gap"]["accuracy_gap"] == pytest.approx(1 - 9 / 15)
        assert report["dataset"]["items"] == 30 and report["model"]["endpoint"].startswith("http://127.0.0.1")

        card = (tmp_path / "run" / "model_card.md").read_text()
        for heading in ("## Intended use", "## Out-of-scope uses", "## Evaluation data", "## Disaggregated results",
                        "published, not measured", "Apparent, not self-identified", "### gender by race × gender"):
            assert heading in card
        assert report["plots"] and all(
            (tmp_path / "run" / p).read_bytes().startswith(b"\x89PNG") for p in report["plots"])

        # A second run of the same command finds everything cached: no call, the same report.
        again = run_cli(tmp_path / "ff", tmp_path / "run", *args, "--no-plots")
        assert server.requests == 90 and again["run"]["calls"] == 0 and again["run"]["cached"] == 90
        assert again.pop("plots") == []
        report.pop("plots")
        assert without_timing(again) == without_timing(report)


def test_interrupted_run_resumes_without_repeating_calls(tmp_path):
    truth = fairface_fixture(tmp_path / "ff", 40)
    with StandIn(answerer(truth), delay=0.05) as server:
        args = ("--endpoint", server.base_url, "--model", "standin", "--no-plots")
        reference = run_cli(tmp_path / "ff", tmp_path / "reference", *args, "--concurrency", "8")
        before = server.requests
        assert before == 120

        cache = tmp_path / "run" / "predictions.jsonl"
        command = [sys.executable, "-c", "from faceqa.eval.cli import app; app()", "run", str(tmp_path / "ff"),
                   "--format", "fairface", "--out", str(tmp_path / "run"), "--tasks", ",".join(TASKS),
                   "--min-group-size", "3", "--bootstrap", "200", "--no-progress", "--concurrency", "2", *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"},  # SIGINT as in a terminal, also
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # under nohup
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not cache.exists() or len(cache.read_bytes().splitlines()) < 20):
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr.decode()
        assert b"run the same command again to resume" in stderr
        saved = len(cache.read_bytes().splitlines())
        assert 20 <= saved < 120
        assert server.requests - before == saved  # every call made was saved, in-flight ones included

        resumed = run_cli(tmp_path / "ff", tmp_path / "run", *args, "--concurrency", "2")
        assert resumed["run"]["cached"] == saved and resumed["run"]["calls"] == 120 - saved
        assert server.requests - before == 120
        assert set(server.hits.values()) == {2}  # each (image, question) once per run: reference + resumed
        assert without_timing(resumed) == without_timing(reference)


PEOPLE = {  # apparent labels, as a FairFace annotator would give them
    "astronaut.png": ("White", "Female", "40-49"), "grace_hopper.jpg": ("White", "Female", "70+"),
    "obama.jpg": ("Black", "Male", "40-49"), "biden.jpg": ("White", "Male", "60-69"),
}


def portrait_fixture(root: Path) -> Path:
    """The example portraits in FairFace's layout, plus a photo without a face and a broken file."""
    (root / "val").mkdir(parents=True)
    rows = []
    for name, (race, gender, age) in PEOPLE.items():
        (root / "val" / name).write_bytes((EXAMPLES / name).read_bytes())
        rows.append([f"val/{name}", age, gender, race])
    Image.new("RGB", (64, 64), (90, 90, 90)).save(root / "val" / "blank.png")  # no face: unanswered
    (root / "val" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # unusable: left out, reported
    rows += [["val/blank.png", "20-29", "Male", "Indian"], ["val/broken.jpg", "20-29", "Female", "Indian"]]
    with (root / "fairface_label_val.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", "age", "gender", "race"], *rows])
    return root


def test_embedded_engine_run(tmp_path):
    """The embedded engine on real portraits: the report agrees with the engine's own largest-face answers."""
    from faceqa.faces.engine import FaceEngine

    root, people = portrait_fixture(tmp_path / "ff"), PEOPLE
    report = run_cli(root, tmp_path / "run", "--engine", "--no-plots", tasks=("race", "gender", "age_group"))

    engine = FaceEngine()
    expected = {}
    for name in people:
        face = max(engine.analyze(root / "val" / name).faces, key=lambda f: f.area)
        expected[name] = {"gender": face.gender.label, "age_group": face.age.group}
    for task in ("gender", "age_group"):
        right = sum(expected[n][task] == people[n][("race", "gender", "age_group").index(task)] for n in people)
        assert report["tasks"][task]["n"] == 5
        assert report["tasks"][task]["accuracy"] == pytest.approx(right / 5)
        assert report["tasks"][task]["unanswered_examples"][0]["reason"] == "no face detected"
    assert "race" not in report["tasks"]  # the embedded engine has no race model
    assert report["run"]["skipped"] == {"race: not answered by faceqa-embedded": 6}
    assert report["unusable_inputs"]["count"] == 2
    assert "mae_years" not in report["tasks"]["age_group"]  # FairFace gives groups, not years
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "## Plots" not in card and "iBUG 300-W" in card and "CC0" in card and "Apache-2.0" in card


def test_faceqa_serve_endpoint_scores_like_the_engine_it_serves(tmp_path):
    """Through a real `faceqa serve` (faceqa-local) and the official client, the answers are the assistant's
    sentences; parsed by the shared parser they must score exactly as the embedded engine does directly."""
    from api_server import running

    from faceqa.app.config import ServerConfig

    root = portrait_fixture(tmp_path / "ff")
    direct = run_cli(root, tmp_path / "direct", "--engine", "--no-plots", tasks=("gender", "age_group"))
    with running(ServerConfig()) as url:
        served = run_cli(root, tmp_path / "served", "--endpoint", f"{url}/v1", "--model", "faceqa-local",
                         "--no-plots", tasks=("gender", "age_group"))
    for task in ("gender", "age_group"):
        assert served["tasks"][task]["accuracy"] == pytest.approx(direct["tasks"][task]["accuracy"])
        assert served["tasks"][task]["unanswered_rate"] == pytest.approx(direct["tasks"][task]["unanswered_rate"])
        assert served["tasks"][task]["confusion"] == direct["tasks"][task]["confusion"]
