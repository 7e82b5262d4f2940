"""`faceqa ask` on the group photo: the issue's "done when" questions, checked against the engine's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from faceqa.assistant.cli import ask

GROUP = str(Path(__file__).resolve().parent.parent / "faceqa" / "examples" / "group.jpg")


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # a group, as in faceqa/cli.py, so "ask" is a subcommand
        pass

    app.command("ask")(ask)
    return app


@pytest.fixture
def run(app, engine, monkeypatch):
    """Invoke `ask` with the session's engine (the command would otherwise load the models again)."""
    monkeypatch.setattr("faceqa.faces.engine.FaceEngine", lambda config=None: engine)

    def invoke(*args: str):
        return CliRunner().invoke(app, ["ask", *args])

    return invoke


def _json(run, question: str, *images: str) -> dict:
    result = run(*(images or (GROUP,)), question, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"answer", "task", "faces", "result", "reasoning", "status"} <= set(data)
    return data


def test_done_when(run, engine, group_report):
    faces = sorted(group_report.faces, key=lambda f: f.center[0])

    count = _json(run, "How many people are in this photo?")
    assert count["task"] == "count" and count["result"]["count"] == len(faces)
    assert f"I see {len(faces)} people" in count["answer"]

    for question, face in (
        ("What is the gender, age and emotion of the person on the far left?", faces[0]),
        ("What are the gender, age and emotion of the second from the right?", faces[-2]),
    ):
        data = _json(run, question)
        assert data["faces"] == [face.id] and data["status"] == "ok"
        (record,) = data["result"]["faces"]
        assert record["gender"]["label"] == face.gender.label
        assert record["age"]["group"] == face.age.group
        assert record["emotion"]["label"] == face.emotion.label
        assert f"{face.emotion.score:.0%}" in data["answer"]

    oldest = _json(run, "Who is the oldest?")
    assert oldest["faces"] == [max(faces, key=lambda f: f.age.years).id]

    from faceqa.faces.identity import SAME_PERSON_COSINE, cosine
    from faceqa.images import load_image

    rgb = load_image(GROUP)
    a, b = group_report.faces[0], group_report.faces[2]
    same = _json(run, "Are person 1 and 3 the same person?")
    (pair,) = same["result"]["pairs"]
    engine_cosine = cosine(engine.embed(rgb, a), engine.embed(rgb, b))
    assert pair["cosine"] == pytest.approx(engine_cosine, abs=1e-4)
    assert pair["same"] == (engine_cosine >= SAME_PERSON_COSINE)

    women = [f for f in faces if f.gender.label == "Female"]
    her = _json(run, "Explain her expression step by step")
    if len(women) == 1:
        assert her["faces"] == [women[0].id] and her["task"] == "reasoning"
        for heading in ("Key observations:", "Overall emotional interpretation:", "Conclusion:"):
            assert heading in her["reasoning"] and heading not in her["answer"]
    else:
        assert her["status"] == ("ambiguous" if women else "not_found")


def test_plain_text_and_several_photos(run, examples):
    result = run(str(examples / "obama.jpg"), str(examples / "obama2.jpg"), "Is this the same person in both photos?")
    assert result.exit_code == 0
    assert "person 1 in photo 1 and person 1 in photo 2" in result.output.lower()


def test_bad_input_is_one_line(run, tmp_path):
    missing = run(str(tmp_path / "nope.jpg"), "How many people?")
    assert missing.exit_code == 1 and missing.output.strip().count("\n") == 0
    assert "no such file" in missing.output
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    broken = run(str(text), "How many people?")
    assert broken.exit_code == 1 and "not an image" in broken.output
    alone = run(GROUP)
    assert alone.exit_code == 2 and "then the question" in alone.output
