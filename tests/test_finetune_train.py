"""`faceqa finetune`: LoRA/QLoRA on tiny random PaliGemma, LLaVA and Idefics3 checkpoints, on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from faceqa.dev.synthetic import write_fairface_layout
from faceqa.finetune.build import BuildConfig, Source, run_build
from faceqa.finetune.cli import app
from faceqa.finetune.collate import ChatCollator
from faceqa.finetune.crop import CropConfig
from faceqa.finetune.store import load_built
from faceqa.finetune.train import FinetuneConfig, load_config, load_model, lora_config, run_finetune
from faceqa.finetune.worker import FaceJobConfig
from faceqa.vlm.recipe import set_prefix_attention

pytestmark = pytest.mark.slow  # about half the suite's time: left out of `make test-fast`


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints) -> dict[str, Path]:
    return {arch: tiny_checkpoints.vlm(arch) for arch in ("paligemma", "llava", "idefics3")}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = write_fairface_layout(tmp_path_factory.mktemp("ff"), {"train": 32, "val": 8}, size=32)
    out = tmp_path_factory.mktemp("qa")
    job = FaceJobConfig(crop=CropConfig(mode="trust", size=32), tasks=("attribute", "composite"))
    run_build([Source.parse(f"fairface={root}")], out, BuildConfig(job=job, composite_every=4), progress=False)
    return out


def _config(model: Path, dataset: Path, out: Path, **changes) -> FinetuneConfig:
    settings = {"model": str(model), "dataset": str(dataset), "output_dir": str(out), "max_steps": 4,
                "batch_size": 4, "eval_batch_size": 4, "eval_steps": 2, "save_steps": 2, "logging_steps": 2,
                "max_eval_samples": 8, "eval_generate_samples": 4, "lora_r": 4, "lora_alpha": 8,
                "learning_rate": 1e-3, "precision": "fp32", "resume": "auto"}
    return FinetuneConfig(**{**settings, **changes})


def _adapter_keys(adapter: Path) -> list[str]:
    with safe_open(adapter / "adapter_model.safetensors", "pt") as handle:
        return list(handle.keys())


def test_lora_paligemma_trains_language_model_only_and_resumes(tiny, dataset, tmp_path):
    out = tmp_path / "run"
    record = run_finetune(_config(tiny["paligemma"], dataset, out))
    adapter = Path(record["adapter"])
    keys = _adapter_keys(adapter)
    assert keys and all("language_model" in k and "lora_" in k for k in keys)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        str(tiny["paligemma"])
    assert 0.0 <= record["metrics"]["eval_label_accuracy"] <= 1.0 and record["metrics"]["eval_loss"] > 0
    first = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]

    record = run_finetune(_config(tiny["paligemma"], dataset, out, max_steps=6))
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    # Resumed, not restarted: steps 1-4 are the first run's, learning rates of its 4-step schedule included.
    assert [h for h in state["log_history"] if h["step"] <= 4] == first


def test_qlora_quantizes_the_language_model_to_nf4_on_cpu(tiny, dataset, tmp_path):
    import bitsandbytes as bnb

    config = _config(tiny["paligemma"], dataset, tmp_path / "q", method="qlora")
    model = load_model(config, "paligemma")
    quantized = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and all(".language_model." in n for n in quantized)
    assert model.model.language_model.layers[0].self_attn.q_proj.weight.quant_state.quant_type == "nf4"
    assert isinstance(model.model.vision_tower.encoder.layers[0].self_attn.q_proj, torch.nn.Linear)
    del model
    record = run_finetune(config)
    assert torch.isfinite(torch.tensor(record["metrics"]["train_loss"]))
    assert all("language_model" in k for k in _adapter_keys(Path(record["adapter"])))


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_chat_models_learn_the_answer_only(tiny, dataset, tmp_path, arch):
    from transformers import AutoProcessor

    rows = list(load_built(dataset, cache_dir=tmp_path / "cache")["train"].select(range(3)))
    processor = AutoProcessor.from_pretrained(tiny[arch])
    batch = ChatCollator(processor)(rows)
    for labels, row in zip(batch["labels"], rows, strict=True):
        learned = processor.tokenizer.decode(labels[labels != -100], skip_special_tokens=True)
        assert learned.strip().startswith(row["messages"][1]["content"][0]["text"].strip()[:20])
        assert row["messages"][0]["content"][1]["text"][:20] not in learned
    record = run_finetune(_config(tiny[arch], dataset, tmp_path / "run", max_steps=2, eval_steps=2))
    assert all(PART in k for k in _adapter_keys(Path(record["adapter"]))
               for PART in ["text_model" if arch == "idefics3" else "language_model"])


def test_unfreezing_tower_and_projector_puts_them_in_the_adapter(tiny, dataset, tmp_path):
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    config = _config(tiny["paligemma"], dataset, tmp_path, freeze_vision_tower=False, freeze_projector=False)
    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny["paligemma"]),
                           lora_config(config, "paligemma"))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("vision_tower" in n and "lora_A" in n for n in trainable)
    assert any("language_model" in n and "lora_A" in n for n in trainable)
    assert any("multi_modal_projector" in n and "modules_to_save" in n for n in trainable)
    frozen = get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny["paligemma"]),
                            lora_config(_config(tiny["paligemma"], dataset, tmp_path), "paligemma"))
    assert not any(("vision_tower" in n or "projector" in n) and p.requires_grad
                   for n, p in frozen.named_parameters())


def test_merge_writes_a_checkpoint_that_answers_like_base_plus_adapter(tiny, dataset, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from faceqa.finetune.generate import prompt_inputs

    record = run_finetune(_config(tiny["paligemma"], dataset, tmp_path / "run", max_steps=2, eval_steps=None))
    merged = tmp_path / "merged"
    result = CliRunner().invoke(app, ["finetune", "merge", str(tmp_path / "run"), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    rows = list(load_built(dataset, cache_dir=tmp_path / "cache")["validation"].select(range(2)))
    inputs = prompt_inputs("paligemma", AutoProcessor.from_pretrained(tiny["paligemma"]), rows)
    with torch.no_grad():
        base = AutoModelForImageTextToText.from_pretrained(tiny["paligemma"])
        adapted = PeftModel.from_pretrained(base, record["adapter"]).eval()(**inputs).logits
        folded = AutoModelForImageTextToText.from_pretrained(merged).eval()(**inputs).logits
        plain = AutoModelForImageTextToText.from_pretrained(tiny["paligemma"]).eval()(**inputs).logits
    assert torch.allclose(adapted, folded, atol=1e-4)
    assert not torch.allclose(plain, folded, atol=1e-4)  # the adapter changed something, and merge kept it


def test_prefix_attention_matches_the_serving_engine():
    ids = torch.tensor([[7, 7, 1, 5, 6, 9]])
    batch = {"input_ids": ids, "token_type_ids": torch.tensor([[0, 0, 0, 0, 1, 1]])}
    assert set_prefix_attention(dict(batch), 7, "full")["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1]]
    assert set_prefix_attention(dict(batch), 7, "image")["token_type_ids"].tolist() == [[0, 0, 1, 1, 1, 1]]
    assert set_prefix_attention(dict(batch), 7, "causal")["token_type_ids"].tolist() == [[1] * 6]
    with pytest.raises(ValueError, match="prefix_attention"):
        set_prefix_attention(dict(batch), 7, "sideways")


def test_config_files_are_checked(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: m\ndataset: d\noutput_dir: o\nlearning_rat: 1\n")
    with pytest.raises(ValueError, match="unknown setting.*learning_rat"):
        load_config(path)
    path.write_text("model: m\noutput_dir: o\n")
    with pytest.raises(ValueError, match="missing required setting.*dataset"):
        load_config(path)
    path.write_text("model: m\ndataset: d\noutput_dir: o\nmethod: dora\n")
    with pytest.raises(ValueError, match="method"):
        load_config(path)
    shipped = Path(__file__).resolve().parents[1] / "faceqa" / "finetune" / "configs"
    for config in sorted(shipped.glob("*.yaml")):
        assert load_config(config).model


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: m\ndataset: d\noutput_dir: o\nbatch: 3\n")
    result = CliRunner().invoke(app, ["finetune", str(path)])
    assert result.exit_code == 2 and "unknown setting" in result.output


def test_training_records_its_recipe_lengths_and_an_absolute_base(tiny, dataset, tmp_path, monkeypatch):
    from faceqa.vlm.recipe import Recipe

    monkeypatch.chdir(tiny["paligemma"].parent)
    record = run_finetune(_config(Path("paligemma"), dataset, tmp_path / "run", max_steps=1, eval_steps=None,
                                  prefix_attention="causal"))
    adapter = Path(record["adapter"])
    base = str(tiny["paligemma"].resolve())
    assert Recipe.load(adapter) == Recipe(base_model=base, architecture="paligemma", prompt_style="paligemma",
                                          prefix_attention="causal", image_size=32, crop_margin=0.25,
                                          crop_mode="trust", jpeg_quality=95)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == base
    tokens = record["lengths"]["tokens"]
    assert {"age_group", "gender", "race"} <= set(tokens)
    assert tokens["race"]["target"]["max"] >= 1 and tokens["race"]["sequence"]["max"] > 16  # 16 image tokens
    from transformers import AutoConfig

    vocabulary = AutoConfig.from_pretrained(tiny["paligemma"]).get_text_config().vocab_size
    longest = max(s["sequence"]["max"] for s in tokens.values())
    assert f"fp32 logits of one batch 0.0 GiB (4 x {longest} tokens x {vocabulary} vocabulary" in \
        record["lengths"]["memory"]
    # The recorded absolute base merges from any directory.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["finetune", "merge", str(adapter), "--out", str(tmp_path / "merged")])
    assert result.exit_code == 0, result.output


def test_merge_with_a_base_that_cannot_be_found_is_one_line(tiny, tmp_path):
    from faceqa.dev.tiny import make_tiny_lora

    adapter = make_tiny_lora(tiny["paligemma"], tmp_path / "lora")
    settings = json.loads((adapter / "adapter_config.json").read_text())
    settings["base_model_name_or_path"] = "runs/elsewhere/tiny-paligemma"
    (adapter / "adapter_config.json").write_text(json.dumps(settings))
    result = CliRunner().invoke(app, ["finetune", "merge", str(adapter), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "cannot load the base model 'runs/elsewhere/tiny-paligemma'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_reasoning_targets_longer_than_the_model_are_refused_at_start(tmp_path):
    from affectnet_release import write_affectnet_release

    from faceqa.dev.tiny import TinySize, make_tiny_vlm

    # 96 positions hold an attribute question (about 45 tokens) but not a concise Exp-CoT target (over 100).
    model = make_tiny_vlm("paligemma", tmp_path / "short", size=TinySize(max_positions=96))
    release = write_affectnet_release(tmp_path / "affectnet", training=[1, 2, 3, 0] * 2, validation=[1, 2])
    out = tmp_path / "qa"
    job = FaceJobConfig(crop=CropConfig(mode="trust", size=32), tasks=("attribute", "reasoning"))
    run_build([Source.parse(f"affectnet={release}")], out, BuildConfig(job=job, dedup_distance=-1), progress=False)
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {model}\ndataset: {out}\noutput_dir: {tmp_path / 'run'}\nmax_steps: 1\n"
                    "precision: fp32\neval_steps: null\n")
    result = CliRunner().invoke(app, ["finetune", str(path)])
    assert result.exit_code == 2, result.output
    assert "longer than the model's 96 positions: reasoning up to" in result.output
    assert "emotion" not in result.output.split("positions:")[1]  # the one-label task fits


def test_length_checks_warn_about_truncation_and_describe_percentiles():
    from faceqa.finetune.lengths import TooLong, check_lengths, describe, logits_bytes

    stats = {"reasoning": {"sequence": describe([300, 700, 900])}, "emotion": {"sequence": describe([40, 41])}}
    assert describe([1, 2, 3, 4, 100]) == {"n": 5, "mean": 22.0, "p50": 3, "p95": 100, "max": 100}
    with pytest.raises(TooLong, match="reasoning up to 900 tokens"):
        check_lengths(stats, 512, None)
    assert check_lengths(stats, 512, 400) == [
        "max_length 400 truncates reasoning (sequences up to 900 tokens): its targets lose their end"]
    assert check_lengths(stats, 1024, None) == []
    # PaliGemma-3B: Gemma's 257,216-token vocabulary, batch 8, 680 tokens: 5.6 GB of fp32 logits.
    assert round(logits_bytes(8, 680, 257216) / 1e9, 1) == 5.6
