"""The trained skills end to end at tiny scale: synthetic expressions -> build-dataset (concise Exp-CoT targets,
collages, set-of-marks rows) -> LoRA on a tiny PaliGemma -> vLLM with the adapter -> `faceqa eval run -f built
--endpoint` for the base model and the adapter -> the assistant's VLM paths (reasoning, open question, hard
referent) against the real server.

A tiny random model proves the path, not quality: on held-out rows the adapter must beat the base model on the
reasoning-format parse rate (all three Exp-CoT sections and one emotion in the conclusion, read by the parser the
assistant uses), on the emotion of the person a positional phrase picks out of a synthetic collage (and beat
answering every such question with its most common label), and on set-of-marks numbers. What its words say about
faces means nothing. The checkpoint is `faceqa.dev.tiny.LEARNER` (the default tiny one, its LM head tied to
embeddings of std 0.02, cannot make a peaked output distribution and learned neither skill; see its docstring).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES
from finetune_smoke import ensure_vllm_venv, finetune_smoke
from typer.testing import CliRunner

from faceqa.cli import app

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _skills(runner: CliRunner, built: Path, url: str, model: str, out: Path) -> dict:
    """`faceqa eval run -f built --endpoint` on the held-out rows: reasoning with room for a concise CoT (about
    90 tokens), the one-token answers with 8 (a base model's random text always runs to the limit)."""
    skills = {}
    for tasks, max_tokens in (("reasoning", "112"), ("person,marks", "8")):
        folder = out / tasks.replace(",", "-")
        result = runner.invoke(app, ["eval", "run", str(built), "-f", "built", "--tasks", tasks, "--endpoint", url,
                                     "--model", model, "--prompt-style", "paligemma", "--max-tokens", max_tokens,
                                     "-o", str(folder), "--no-progress", "--concurrency", "8"])
        assert result.exit_code == 0, result.output
        skills |= json.loads((folder / "report.json").read_text())["skills"]
    return skills


def _figures(skill: str, metrics: dict) -> str:
    positions = {k: f"{v['correct']}/{v['n']}" for k, v in metrics.get("by_position", {}).items()}
    return (f"{skill} n {metrics['n']} accuracy {metrics['accuracy']:.2f} parse rate {metrics['parse_rate']:.2f}"
            + (f" by position {json.dumps(positions)}" if positions else ""))


def _most_common_label_accuracy(built: Path, skill: str) -> float:
    """How often answering every held-out question of `skill` with its most common answer would be right."""
    from collections import Counter

    from faceqa.eval.skills import read_skill_rows

    truths = [item.labels[skill] for item in read_skill_rows(built, skills=(skill,))]
    return Counter(truths).most_common(1)[0][1] / len(truths)


def test_a_tuned_adapter_beats_the_base_on_reasoning_and_positional_answers_through_vllm(tmp_path):
    from faceqa.dev.ports import free_port
    from faceqa.dev.synthetic import write_affectnet_layout
    from faceqa.dev.tiny import LEARNER, make_tiny_vlm
    from faceqa.vlm.answers import FALLBACK, OPEN_PREFIX, VLMAssistant
    from faceqa.vlm.openai_backend import OpenAIBackend
    from faceqa.vlm.serve import ServeConfig, VLLMServer

    ensure_vllm_venv()
    timings, runner = {}, CliRunner()
    started = time.perf_counter()
    images = write_affectnet_layout(tmp_path / "synthetic", {"train": 160, "val": 40}, size=64)
    built = tmp_path / "qa"
    result = runner.invoke(app, ["build-dataset", f"affectnet={images}", "--out", str(built), "--crop", "trust",
                                 "--size", "64", "--tasks", "reasoning,composite,marks", "--composite-every", "1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    timings["build"] = time.perf_counter() - started

    base = make_tiny_vlm("paligemma", tmp_path / "tiny-paligemma", size=LEARNER)
    started = time.perf_counter()
    # 600 steps of 8 on one thread: about 2.5 min here. The 4 distinct CoT targets of the synthetic classes are
    # capped at 40 rows so their 90-token answers do not drown the one-token positional answers in the loss.
    adapter = finetune_smoke(tmp_path, model=str(base), dataset=str(built),
                             tasks=["person_emotion", "marks", "reasoning"], max_task_rows={"reasoning": 40},
                             max_steps=600, batch_size=8, learning_rate=3e-3, lora_r=32, lora_alpha=64,
                             logging_steps=100, save_steps=600, eval_steps=None, eval_generate_samples=0)
    timings["finetune"] = time.perf_counter() - started

    started = time.perf_counter()
    serve = ServeConfig(model=str(base), loras={"skills": str(adapter)}, port=free_port(), cpu=True,
                        max_model_len=512)
    with VLLMServer(serve) as server:
        timings["vllm_start"] = time.perf_counter() - started
        started = time.perf_counter()
        before = _skills(runner, built, server.base_url, str(base), tmp_path / "eval-base")
        after = _skills(runner, built, server.base_url, "skills", tmp_path / "eval-tuned")
        timings["eval"] = time.perf_counter() - started
        # The assistant's VLM paths against the real server: every kind answered by the model, none falling back.
        assistant = VLMAssistant(OpenAIBackend(server.base_url, "skills", timeout=120, max_retries=0),
                                 style="paligemma")
        photo = EXAMPLES / "group.jpg"
        reasoning = assistant.answer([photo], "Explain the expression of person 3 step by step")
        open_answer = assistant.answer([photo], "Is anyone wearing glasses?")
        referent = assistant.answer([photo], "How old is the boy holding a ball?")
    constant = {skill: _most_common_label_accuracy(built, skill) for skill in ("person", "marks")}
    for name, report in (("base", before), ("tuned", after)):
        print(f"\n{name}: " + "; ".join(_figures(skill, r) for skill, r in report.items()))
    print(f"most common answer: {json.dumps({k: round(v, 2) for k, v in constant.items()})}; seconds: "
          + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    # The Exp-CoT layout, read by the assistant's own parser: learned; the base model's text never parses.
    assert after["reasoning"]["parse_rate"] > before["reasoning"]["parse_rate"], (before["reasoning"],
                                                                                   after["reasoning"])
    # The emotion of the person at a position: learned from the image, better than always naming one label.
    assert after["person"]["accuracy"] > max(before["person"]["accuracy"], constant["person"]), (
        before["person"], after["person"], constant)
    # Which box number the referent is.
    assert after["marks"]["accuracy"] > before["marks"]["accuracy"], (before["marks"], after["marks"])
    assert after["marks"]["parse_rate"] > before["marks"]["parse_rate"]
    note = FALLBACK.split("{")[0]
    assert "checked against the measured cues" in (reasoning.reasoning or "") and note not in reasoning.answer
    assert open_answer.answer.startswith(OPEN_PREFIX)
    assert note not in referent.answer
