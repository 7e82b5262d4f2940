"""The vLLM command line each architecture gets, and the vlm CLI commands (no server started)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceqa.vlm.cli import app
from faceqa.vlm.serve import ServeConfig, ServeError, vllm_command

PYTHON = Path("/opt/vllm/bin/python")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from faceqa.dev.tiny import make_tiny_lora, make_tiny_vlm

    root = tmp_path_factory.mktemp("tiny-serve")
    for arch in ("paligemma", "llava"):
        make_tiny_vlm(arch, root / arch)
    make_tiny_lora(root / "llava", root / "llava-lora", rank=12)
    return root


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_paligemma_gets_a_chat_template_and_one_image(tiny, tmp_path):
    (tiny / "paligemma" / "chat_template.jinja").unlink(missing_ok=True)  # as released checkpoints ship
    argv, env = vllm_command(ServeConfig(model=str(tiny / "paligemma"), cpu=True), PYTHON, tmp_path)
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
        model=str(tiny / "llava"), loras={"faces": str(tiny / "llava-lora"), "other": str(tiny / "llava-lora")}
    )
    argv, env = vllm_command(config, PYTHON, tmp_path)
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == {"image": 2}
    assert "--chat-template" not in argv  # the folder ships one
    assert "--enable-lora" in argv and flag(argv, "--max-loras") == "2"
    assert flag(argv, "--max-lora-rank") == "16"  # rank 12 rounded up to a rank vLLM accepts
    modules = argv[argv.index("--lora-modules") + 1 : argv.index("--lora-modules") + 3]
    assert modules == [f"faces={tiny / 'llava-lora'}", f"other={tiny / 'llava-lora'}"]
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
