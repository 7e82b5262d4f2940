"""The whole loop at tiny scale: labelled images -> build-dataset -> LoRA fine-tune -> vLLM -> OpenAI API accuracy.

A synthetic FairFace-layout dataset whose label is the image's colour, a tiny random
PaliGemma, the real `faceqa build-dataset` and `faceqa finetune` commands, the real
vLLM server with the adapter as `--lora-modules`, and the official openai client.
Accuracy on held-out images must go from the base model's to >= 90%.
"""

from __future__ import annotations

import base64
import csv
import time
from pathlib import Path

import pytest
from finetune_smoke import ensure_vllm_venv, finetune_smoke
from typer.testing import CliRunner

from faceqa.dev.synthetic import write_fairface_layout
from faceqa.finetune.cli import app
from faceqa.prompts import templates
from faceqa.prompts.taxonomy import normalize

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _accuracy(client, model: str, held_out: list[tuple[Path, str]], **extra) -> tuple[float, list[str]]:
    question = templates.question("age_group", "paligemma")
    answers = []
    for path, _ in held_out:
        url = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
        response = client.chat.completions.create(
            model=model, temperature=0, max_tokens=8,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                   {"type": "text", "text": question}]}], **extra)
        answers.append(response.choices[0].message.content or "")
    correct = sum(normalize("age_group", a) == truth for a, (_, truth) in zip(answers, held_out, strict=True))
    return correct / len(held_out), answers


def test_synthetic_labels_go_from_chance_to_90_percent_through_vllm(tmp_path):
    from openai import OpenAI

    from faceqa.dev.ports import free_port
    from faceqa.dev.tiny import make_tiny_vlm
    from faceqa.vlm.serve import ServeConfig, VLLMServer

    ensure_vllm_venv()
    timings = {}
    started = time.perf_counter()
    images = write_fairface_layout(tmp_path / "synthetic", {"train": 200, "val": 60}, size=64)
    runner = CliRunner()
    built = tmp_path / "qa"
    result = runner.invoke(app, ["build-dataset", f"fairface={images}", "--out", str(built), "--crop", "trust",
                                 "--size", "64", "--tasks", "attribute", "--no-progress"])
    assert result.exit_code == 0, result.output
    timings["build"] = time.perf_counter() - started

    base = make_tiny_vlm("paligemma", tmp_path / "tiny-paligemma")
    started = time.perf_counter()
    adapter = finetune_smoke(tmp_path, model=str(base), dataset=str(built))
    timings["finetune"] = time.perf_counter() - started

    with open(images / "fairface_label_val.csv") as handle:  # held out: never in the training split
        held_out = [(images / row["file"], normalize("age_group", row["age"])) for row in csv.DictReader(handle)]
    started = time.perf_counter()
    serve = ServeConfig(model=str(base), loras={"synthetic": str(adapter)}, port=free_port(), cpu=True)
    with VLLMServer(serve) as server:
        timings["vllm_start"] = time.perf_counter() - started
        client = OpenAI(base_url=server.base_url, api_key="unused")
        base_free, _ = _accuracy(client, str(base), held_out)
        choice = {"extra_body": {"structured_outputs": {"choice": templates.choices("age_group")}}}
        base_forced, _ = _accuracy(client, str(base), held_out, **choice)
        tuned, answers = _accuracy(client, "synthetic", held_out)
    print(f"\nheld-out accuracy over {len(held_out)} images, 4 balanced classes (chance 25%): base "
          f"{base_free:.0%} free-form, {base_forced:.0%} forced to one of the 9 age groups; fine-tuned {tuned:.0%}. "
          f"seconds: {', '.join(f'{k} {v:.0f}' for k, v in timings.items())}")
    assert base_free <= 0.5 and base_forced <= 0.5
    assert tuned >= 0.9, answers
