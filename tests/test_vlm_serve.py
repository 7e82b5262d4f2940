"""The vLLM command line each architecture gets, and the vlm CLI commands (no server started)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceqa.vlm.cli import app
from faceqa.vlm.serve import ServeConfig, ServeError, vllm_command

PYTHON = Path("/opt/vllm/bin/python")


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints):
    tiny_checkpoints.vlm("paligemma")
    tiny_checkpoints.lora("llava", rank=12)
    return tiny_checkpoints.root


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_paligemma_gets_a_chat_template_and_one_image(tiny, tmp_path):
    import shutil

    released = shutil.copytree(tiny / "paligemma", tmp_path / "paligemma")  # never edit the run's shared checkpoint
    (released / "chat_template.jinja").unlink(missing_ok=True)  # as released checkpoints ship
    argv, env = vllm_command(ServeConfig(model=str(released), cpu=True), PYTHON, tmp_path)
    assert argv[:3] == [str(PYTHON), "-m", "vllm.entrypoints.openai.api_server"]
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == {"image": 1}
    template = Path(flag(argv, "--chat-template"))
    assert template.parent == tmp_path and "message['content']" in template.read_text()
    cpu_flags = [flag(argv, name) for name in ("--dtype", "--max-model-len", "--max-num-seqs")]
    assert cpu_flags == ["float32", "512", "4"]
    assert env["VLLM_CPU_KVCACHE_SPACE"]
    assert "--enable-lora" not in argv


def test_llava_with_adapters(tiny, tmp_path):
    config = ServeConfig(
        model=str(tiny / "llava"), loras={"faces": str(tiny / "llava-lora-r12"), "other": str(tiny / "llava-lora-r12")}
    )
    argv, env = vllm_command(config, PYTHON, tmp_path)
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == {"image": 2}
    assert "--chat-template" not in argv  # the folder ships one
    assert "--enable-lora" in argv and flag(argv, "--max-loras") == "2"
    assert flag(argv, "--max-lora-rank") == "16"  # rank 12 rounded up to a rank vLLM accepts
    modules = argv[argv.index("--lora-modules") + 1 : argv.index("--lora-modules") + 3]
    assert modules == [f"faces={tiny / 'llava-lora-r12'}", f"other={tiny / 'llava-lora-r12'}"]
    assert "--dtype" not in argv and not env  # GPU defaults are vLLM's own
    assert json.loads(flag(argv, "--structured-outputs-config"))["disable_any_whitespace"] is True


def test_parallelism_and_extra_flags_pass_through(tiny, tmp_path):
    config = ServeConfig(
        model=str(tiny / "llava"),
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        distributed_executor_backend="ray",
        api_key="k",
        extra_args=["--gpu-memory-utilization", "0.8"],
    )
    argv, _ = vllm_command(config, PYTHON, tmp_path)
    assert flag(argv, "--tensor-parallel-size") == "4" and flag(argv, "--pipeline-parallel-size") == "2"
    assert flag(argv, "--distributed-executor-backend") == "ray" and flag(argv, "--api-key") == "k"
    assert argv[-2:] == ["--gpu-memory-utilization", "0.8"]


def test_adapter_without_config_is_refused(tiny, tmp_path):
    with pytest.raises(ServeError, match="adapter_config.json"):
        vllm_command(ServeConfig(model=str(tiny / "llava"), loras={"x": str(tmp_path)}), PYTHON, tmp_path)


def test_missing_vllm_venv_is_explained(monkeypatch, tmp_path):
    from faceqa.vlm import serve

    monkeypatch.delenv("FACEQA_VLLM_PYTHON", raising=False)
    monkeypatch.setenv("FACEQA_VLLM_VENV", str(tmp_path / "absent"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ServeError, match="install-vllm-cpu.sh"):
        serve.vllm_python()


def test_cli_make_tiny_vlm_and_lora(tmp_path):
    args = ["dev", "make-tiny-vlm", "llava", str(tmp_path / "m"), "--lora", str(tmp_path / "a")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "a" / "adapter_config.json").is_file()


def test_cli_refuses_unknown_architecture(tmp_path):
    result = CliRunner().invoke(app, ["dev", "make-tiny-vlm", "gpt", str(tmp_path)])
    assert result.exit_code != 0 and "paligemma" in result.output


def test_cli_serve_vlm_refuses_bad_lora_specs(tiny, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["serve-vlm", str(tiny / "llava"), "--lora", "no-equals-sign"])
    assert result.exit_code == 2 and "NAME=PATH" in result.output
    result = runner.invoke(app, ["serve-vlm", str(tiny / "llava"), "--lora", f"x={tmp_path}"])
    assert result.exit_code == 2 and "adapter_config.json" in result.output


# -- the adapter's recipe, read by the server's clients -------------------------------------------


class FakeVLLM:
    """A stand-in for vLLM's OpenAI server: /v1/models lists a LoRA with its folder as `root` (as vLLM does);
    chat completions answer "Happiness" with a log-probability and record every request body."""

    def __init__(self, models: list[dict]):
        import threading
        from http.server import ThreadingHTTPServer

        from eval_standin import JSONHandler

        fake = self
        self.models, self.received = models, []

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(200, {"object": "list", "data": fake.models})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                fake.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                token = {"token": "Happiness", "logprob": -0.1, "bytes": None, "top_logprobs": []}
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [
                    {"index": 0, "finish_reason": "stop", "logprobs": {"content": [token]},
                     "message": {"role": "assistant", "content": "Happiness"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeVLLM:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _adapter_with_recipe(tiny: Path, out: Path, prefix_attention: str = "image") -> Path:
    from faceqa.dev.tiny import make_tiny_lora
    from faceqa.vlm.recipe import Recipe

    adapter = make_tiny_lora(tiny / "paligemma", out)
    Recipe(str(tiny / "paligemma"), "paligemma", "paligemma", prefix_attention, 224, 0.25).save(adapter)
    return adapter


def test_faceqa_ask_uses_the_prompt_style_the_served_adapter_was_trained_with(tiny, tmp_path, examples):
    from faceqa.cli import app as faceqa_app

    adapter = _adapter_with_recipe(tiny, tmp_path / "lora")
    models = [{"id": "faces", "object": "model", "root": str(adapter), "parent": str(tiny / "paligemma")},
              {"id": "chatty", "object": "model", "root": str(tiny / "llava")}]
    with FakeVLLM(models) as vllm:
        result = CliRunner().invoke(faceqa_app, ["ask", "--backend", "vlm", "--base-url", vllm.base_url, "--model",
                                                 "faces", str(examples / "astronaut.png"), "How does she feel?"])
        assert result.exit_code == 0, result.output
        assert vllm.received
        for body in vllm.received:  # PaliGemma's bare prefix: no system prompt, "answer en ..."
            assert [m["role"] for m in body["messages"]] == ["user"]
            assert body["messages"][0]["content"][-1]["text"].startswith("answer en ")
        asked = len(vllm.received)
        result = CliRunner().invoke(faceqa_app, ["ask", "--backend", "vlm", "--base-url", vllm.base_url, "--model",
                                                 "chatty", str(examples / "astronaut.png"), "How does she feel?"])
        assert result.exit_code == 0, result.output
        assert all(b["messages"][0]["role"] == "system" for b in vllm.received[asked:])  # a chat model: chat
        result = CliRunner().invoke(faceqa_app, ["ask", "--backend", "vlm", "--base-url", vllm.base_url, "--model",
                                                 "facez", str(examples / "astronaut.png"), "How does she feel?"])
        assert result.exit_code == 2 and "does not serve a model named 'facez'; it serves: faces, chatty" in \
            result.output


def _faceqa_vlm_fill(config, rgb, report) -> None:
    """Fill `report` with `faceqa serve`'s faceqa-vlm attribute engine for `config`, as one API request would."""
    from faceqa.app.service import Budget, _vlm_attributes

    _vlm_attributes(config, lambda: Budget(time.monotonic() + 600)).fill(rgb, report)


def test_the_served_adapter_is_sent_the_face_crop_its_recipe_records(tiny, tmp_path, examples):
    """The crop travels with the adapter: `faceqa ask --backend vlm` and `faceqa serve`'s faceqa-vlm read it, and
    send each face as the JPEG bytes a training row of that face holds (the build's quality, the shared encoder)."""
    from eval_standin import sent_image_files

    import faceqa
    from faceqa import crops
    from faceqa.app.config import ServerConfig
    from faceqa.cli import app as faceqa_app
    from faceqa.images import load_image
    from faceqa.vlm.recipe import Recipe, crop_of, served_recipe

    adapter = _adapter_with_recipe(tiny, tmp_path / "lora")
    Recipe(str(tiny / "paligemma"), "paligemma", "paligemma", "image", 96, 0.5, "detect", jpeg_quality=60).save(adapter)
    models = [{"id": "faces", "object": "model", "root": str(adapter)}]
    photo = examples / "astronaut.png"
    rgb, report = load_image(photo), faceqa.analyze(photo)
    trained = ("image/jpeg", crops.encode_jpeg(crops.face_crop(rgb, report.faces[0].box, 0.5, 96), 60))
    with FakeVLLM(models) as vllm:
        result = CliRunner().invoke(faceqa_app, ["ask", "--backend", "vlm", "--base-url", vllm.base_url, "--model",
                                                 "faces", str(photo), "How does she feel?"])
        assert result.exit_code == 0, result.output
        style, recipe = served_recipe("auto", vllm.base_url, "faces")
        assert vllm.received and all(sent_image_files(body) == [trained] for body in vllm.received)
        assert (style, crop_of(recipe)) == ("paligemma", {"margin": 0.5, "crop_size": 96})
        asked = len(vllm.received)
        config = ServerConfig(vlm_base_url=vllm.base_url, vlm_model="faces", vlm_recipe=recipe)
        _faceqa_vlm_fill(config, rgb, report)
        served = vllm.received[asked:]
        assert served and all(sent_image_files(body) == [trained] for body in served)


def test_a_model_without_a_recipe_is_sent_the_default_crop_as_lossless_png(tiny, examples):
    import numpy as np
    from eval_standin import sent_image_files, sent_images

    import faceqa
    from faceqa import crops
    from faceqa.app.config import ServerConfig
    from faceqa.cli import app as faceqa_app
    from faceqa.images import load_image

    photo = examples / "astronaut.png"
    rgb, report = load_image(photo), faceqa.analyze(photo)
    expected = crops.face_crop(rgb, report.faces[0].box)
    with FakeVLLM([{"id": "base", "object": "model", "root": str(tiny / "llava")}]) as vllm:
        result = CliRunner().invoke(faceqa_app, ["ask", "--backend", "vlm", "--base-url", vllm.base_url, "--model",
                                                 "base", str(photo), "How does she feel?"])
        assert result.exit_code == 0, result.output
        asked = len(vllm.received)
        _faceqa_vlm_fill(ServerConfig(vlm_base_url=vllm.base_url, vlm_model="base"), rgb, report)
    assert 0 < asked < len(vllm.received)
    for body in vllm.received:
        assert [media for media, _ in sent_image_files(body)] == ["image/png"]
        assert np.array_equal(sent_images(body)[0], expected)


def test_an_adapter_is_served_at_its_builds_jpeg_quality_or_the_builders_default():
    from faceqa.crops import JPEG_QUALITY
    from faceqa.finetune.worker import FaceJobConfig
    from faceqa.vlm.recipe import Recipe, jpeg_quality_of

    recorded = Recipe("base", "paligemma", "paligemma", "image", 96, 0.5, "detect", jpeg_quality=60)
    older = Recipe("base", "paligemma", "paligemma", "image", 96, 0.5)  # a build that recorded no quality
    assert jpeg_quality_of(recorded) == 60
    assert jpeg_quality_of(older) == JPEG_QUALITY == FaceJobConfig().jpeg_quality == 95
    assert jpeg_quality_of(None) is None  # a base or hosted model: PNG


def test_faceqa_serve_checks_the_vlm_model_before_serving(tiny, tmp_path):
    from faceqa.cli import app as faceqa_app

    with FakeVLLM([{"id": "faces", "object": "model"}]) as vllm:
        result = CliRunner().invoke(faceqa_app, ["serve", "--vlm-base-url", vllm.base_url, "--vlm-model", "face"])
    assert result.exit_code == 2 and "does not serve a model named 'face'" in result.output
    result = CliRunner().invoke(faceqa_app, ["serve", "--vlm-base-url", "http://127.0.0.1:9/v1", "--vlm-model", "f"])
    assert result.exit_code == 2 and "cannot list the models of http://127.0.0.1:9/v1" in result.output


def test_serve_vlm_warns_about_another_mask_and_explains_a_busy_port(tiny, tmp_path, monkeypatch):
    import socket
    import sys

    monkeypatch.setenv("FACEQA_VLLM_PYTHON", sys.executable)
    adapter = _adapter_with_recipe(tiny, tmp_path / "lora", prefix_attention="image")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve-vlm", str(tiny / "paligemma"), "--device", "cpu", "--port",
                                          str(port), "--lora", f"faces={adapter}"])
    assert result.exit_code == 1 and f"127.0.0.1:{port} is already in use" in result.output
    assert isinstance(result.exception, SystemExit)  # a one-line error, no ServeError traceback
    assert "faces was trained with prefix_attention 'image' but is served with 'causal'" in result.output


def test_serve_vlm_does_not_take_the_api_port_by_default():
    import inspect

    from faceqa.app.config import ServerConfig
    from faceqa.vlm.cli import serve_vlm

    assert inspect.signature(serve_vlm).parameters["port"].default != ServerConfig().port


def test_compose_api_reads_the_recipe_of_the_adapter_vllm_serves():
    import re

    import yaml

    root = Path(__file__).resolve().parents[1]
    services = yaml.safe_load((root / "compose.yaml").read_text())["services"]
    vllm, api = services["vllm"]["command"], services["api"]["command"]
    name, path = flag(vllm, "--lora").split("=", 1)
    assert flag(api, "--vlm-model") == name and flag(api, "--prompt-style") == "auto"
    assert flag(api, "--vlm-base-url") == f"http://vllm:{flag(vllm, '--port')}/v1"
    copied = re.findall(r"^COPY \$\{ADAPTER\}/faceqa_recipe.json (\S+)$", (root / "Dockerfile").read_text(), re.M)
    assert copied == [f"{path}/faceqa_recipe.json"]  # the api container finds the recipe at vLLM's root
