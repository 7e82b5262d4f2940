"""`faceqa finetune CONFIG.yaml`: LoRA or QLoRA on a PaliGemma / LLaVA / Idefics3 checkpoint with TRL's SFTTrainer.

By default only the language model gets adapters, the vision tower and projector
stay frozen: vLLM applies LoRA to the language model of multimodal models, so
such an adapter is served as-is with `--lora-modules`. Unfreezing either is
possible (LoRA on the tower, a fully trained projector), but then the adapter must
be merged (`faceqa finetune merge`) before vLLM can serve it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceqa.vlm.recipe import PREFIX_ATTENTION, Recipe, style_of_architecture

from .lengths import memory_note
from .store import SETTINGS

log = logging.getLogger(__name__)

METHODS = ("lora", "qlora")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Where each architecture keeps its parts (transformers 5 module names).
PARTS = {
    "paligemma": {"language": "language_model", "vision": "vision_tower", "projector": "multi_modal_projector"},
    "llava": {"language": "language_model", "vision": "vision_tower", "projector": "multi_modal_projector"},
    "idefics3": {"language": "text_model", "vision": "vision_model", "projector": "connector"},
}
LANGUAGE_PROJECTIONS = "q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj"
VISION_PROJECTIONS = "q_proj|k_proj|v_proj|out_proj|fc1|fc2"


@dataclass
class FinetuneConfig:
    model: str  # checkpoint folder or Hub id
    dataset: str  # a `faceqa build-dataset` output folder
    output_dir: str
    method: str = "lora"  # lora | qlora (4-bit NF4 base weights, bitsandbytes)
    tasks: list[str] | None = None  # keep only rows of these tasks (templates' names: age_group, reasoning, ...)
    # At most this many training rows of a task ({reasoning: 40}): the loss is a mean over answer tokens, so a
    # task with 80-token targets outweighs 1-token answers 80 to 1 row for row.
    max_task_rows: dict[str, int] | None = None
    train_split: str = "train"
    eval_split: str | None = "validation"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] | None = None  # default: the language model's attention and MLP projections
    prefix_attention: str = "image"  # PaliGemma: full | image | causal; match the server (see vlm/recipe.py)
    freeze_vision_tower: bool = True
    freeze_projector: bool = True
    gradient_checkpointing: bool = False
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup: float = 0.03  # warm-up steps, or a fraction of all steps when below 1
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    logging_steps: int = 10
    eval_steps: int | None = 200  # None: no evaluation during training
    save_steps: int = 200
    save_total_limit: int = 2
    max_length: int | None = None  # tokens; longer sequences are truncated (and said so at start)
    length_sample: int = 32  # rows per task tokenized at start to report lengths and memory
    max_train_samples: int | None = None
    max_eval_samples: int | None = 512
    eval_generate_samples: int = 64  # rows answered by generation at each evaluation, for label accuracy
    precision: str = "auto"  # auto: bf16 on a GPU that has it, else fp32
    cpu_threads: int | None = None  # torch's threads when training on a CPU; None: torch's default (every core)
    resume: bool | str = "auto"  # auto: from the last checkpoint in output_dir, if any; or a checkpoint path
    seed: int = 0
    report_to: str = "none"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.prefix_attention not in PREFIX_ATTENTION:
            raise ValueError(f"prefix_attention must be one of {', '.join(PREFIX_ATTENTION)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


def load_config(path: str | Path, **overrides: Any) -> FinetuneConfig:
    """A YAML file of FinetuneConfig fields; unknown keys are an error, not silently ignored."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    missing = [f.name for f in dataclasses.fields(FinetuneConfig)
               if f.default is dataclasses.MISSING and f.name not in data]
    if missing:
        raise ValueError(f"{path}: missing required setting(s) {', '.join(missing)}")
    return FinetuneConfig(**data)


def architecture(model: str) -> str:
    from transformers import AutoConfig

    arch = AutoConfig.from_pretrained(model).model_type
    if arch not in PARTS:
        raise ValueError(f"{model}: architecture {arch!r} is not supported; use one of {', '.join(PARTS)}")
    return arch


def target_modules(config: FinetuneConfig, arch: str) -> str | list[str]:
    """A regex over module names: the language model's projections, plus the tower's when it is unfrozen."""
    if config.target_modules is not None:
        return config.target_modules
    parts = PARTS[arch]
    pattern = rf".*\.{parts['language']}\..*\.({LANGUAGE_PROJECTIONS})"
    if not config.freeze_vision_tower:
        pattern = rf"(?:{pattern}|.*\.{parts['vision']}\..*\.({VISION_PROJECTIONS}))"
    return pattern


def _dtype(config: FinetuneConfig):
    import torch

    if config.precision == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[config.precision]


def load_model(config: FinetuneConfig, arch: str):
    """The base model, its weights 4-bit NF4 for QLoRA (the language model only: tower, projector and head stay)."""
    import torch
    from transformers import AutoModelForImageTextToText, BitsAndBytesConfig

    dtype = _dtype(config)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.method == "qlora":
        parts = PARTS[arch]
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            # Regexes anchored at the start of module names ("model.vision_tower..." in transformers 5).
            llm_int8_skip_modules=[rf".*\.{parts['vision']}", rf".*\.{parts['projector']}", "lm_head"])
        kwargs["device_map"] = {"": 0} if torch.cuda.is_available() else {"": "cpu"}
    model = AutoModelForImageTextToText.from_pretrained(config.model, **kwargs)
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    return model


def lora_config(config: FinetuneConfig, arch: str):
    from peft import LoraConfig

    modules_to_save = None if config.freeze_projector else [PARTS[arch]["projector"]]
    if not (config.freeze_projector and config.freeze_vision_tower):
        log.warning("vision tower or projector unfrozen: vLLM serves LoRA on the language model only, so run "
                    "`faceqa finetune merge` and serve the merged checkpoint")
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=target_modules(config, arch), modules_to_save=modules_to_save,
                      task_type="CAUSAL_LM")


def load_splits(config: FinetuneConfig):
    """Train and eval datasets from a built dataset folder, filtered to `tasks` and capped in size."""
    from .store import load_built

    built = load_built(config.dataset, cache_dir=Path(config.output_dir) / "dataset-cache")

    def pick(split: str, limit: int | None):
        if split not in built:
            raise ValueError(f"{config.dataset}: no {split!r} split (has {', '.join(built)})")
        data = built[split]
        if config.tasks:
            wanted = set(config.tasks)
            data = data.filter(lambda task: task in wanted, input_columns="task")
        if limit is not None and len(data) > limit:
            data = data.shuffle(seed=config.seed).select(range(limit))
        return data

    train = pick(config.train_split, config.max_train_samples)
    if config.max_task_rows:
        train = train.select(_capped(list(train["task"]), config.max_task_rows))
    evaluation = pick(config.eval_split, config.max_eval_samples) if config.eval_split and config.eval_steps else None
    if len(train) == 0:
        raise ValueError(f"{config.dataset}: no training rows left (tasks filter: {config.tasks})")
    return train, evaluation


def _capped(tasks: list[str], limits: dict[str, int]) -> list[int]:
    """Indices of the rows kept when each task of `limits` keeps only its first rows (row order is kept)."""
    seen: dict[str, int] = {}
    kept = []
    for index, task in enumerate(tasks):
        seen[task] = seen.get(task, 0) + 1
        if seen[task] <= limits.get(task, seen[task]):
            kept.append(index)
    return kept


def _label_accuracy_callback(config: FinetuneConfig, arch: str, processor, rows: list[dict]):
    from transformers import TrainerCallback

    from .generate import generate_answers, label_correct

    class LabelAccuracy(TrainerCallback):
        """At each evaluation, answer some validation questions by generation and log the share named right."""

        def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
            if model is None or metrics is None or not rows:
                return
            was_training = model.training
            model.eval()
            answers = []
            for start in range(0, len(rows), config.eval_batch_size):
                answers += generate_answers(model, processor, arch, rows[start:start + config.eval_batch_size],
                                            prefix_attention=config.prefix_attention)
            model.train(was_training)
            scored = [c for row, a in zip(rows, answers, strict=True) if (c := label_correct(row, a)) is not None]
            if scored:
                metrics["eval_label_accuracy"] = sum(scored) / len(scored)
                state.log_history.append({"eval_label_accuracy": metrics["eval_label_accuracy"],
                                          "step": state.global_step})

    return LabelAccuracy()


def _resume_from(config: FinetuneConfig) -> str | bool | None:
    from transformers.trainer_utils import get_last_checkpoint

    if config.resume is False:
        return None
    if isinstance(config.resume, str) and config.resume != "auto":
        return config.resume
    out = Path(config.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last is None and config.resume is True:
        raise ValueError(f"resume requested but {out} holds no checkpoint-*")
    return last


def measure_lengths(config: FinetuneConfig, arch: str, processor, train) -> dict[str, Any]:
    """Token lengths per task on a sample of the training rows, as the collator builds them; refuses overlong ones.

    Logged at the start (and kept in finetune.json) so that long reasoning targets,
    truncation and the memory they need are known before the first step, not after.
    """
    from transformers import AutoConfig

    from .collate import collator_for
    from .lengths import check_lengths, sample_by_task, token_lengths

    rows = train.select(sample_by_task(list(train["task"]), config.length_sample, config.seed))
    stats = token_lengths(rows, collator_for(arch, processor, None, config.prefix_attention))
    for task, s in sorted(stats.items()):
        log.info("tokens %s: sequence mean %.0f max %d; target mean %.0f max %d (n=%d)", task, s["sequence"]["mean"],
                 s["sequence"]["max"], s["target"]["mean"], s["target"]["max"], s["sequence"]["n"])
    positions = AutoConfig.from_pretrained(config.model).get_text_config().max_position_embeddings
    for warning in check_lengths(stats, positions, config.max_length):
        log.warning("%s", warning)
    longest = max(int(s["sequence"]["max"]) for s in stats.values())
    return {"tokens": stats, "model_positions": positions, "longest": min(longest, config.max_length or longest)}


def recipe(config: FinetuneConfig, arch: str) -> Recipe:
    """What serving must repeat: the base, the prompt style, the prefix mask, the dataset's crop and JPEG quality."""
    job: dict[str, Any] = {}
    settings = Path(config.dataset) / SETTINGS
    if settings.is_file():
        job = json.loads(settings.read_text()).get("config", {}).get("job", {})
    crop = job.get("crop", {})
    return Recipe(base_model=config.model, architecture=arch, prompt_style=style_of_architecture(arch),
                  prefix_attention=config.prefix_attention if arch == "paligemma" else None,
                  image_size=crop.get("size"), crop_margin=crop.get("margin"), crop_mode=crop.get("mode"),
                  jpeg_quality=job.get("jpeg_quality"))


def run_finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Train, evaluate, save the adapter (and processor) to OUTPUT_DIR/adapter; returns the final metrics.

    `cpu_threads` holds for this call only: a tiny model's matrices are too small to split, and on shared
    cores extra threads mostly wait for each other (the tiny PaliGemma trained 4.7x faster on one thread
    than on two, measured on this 2-core machine under load).
    """
    import torch

    if config.cpu_threads is None or torch.cuda.is_available():
        return _run_finetune(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.cpu_threads)
    try:
        return _run_finetune(config)
    finally:
        torch.set_num_threads(threads)


def _run_finetune(config: FinetuneConfig) -> dict[str, Any]:
    import torch
    from transformers import AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from .collate import collator_for

    if Path(config.model).is_dir():  # recorded absolute: the adapter then merges and serves from any directory
        config = dataclasses.replace(config, model=str(Path(config.model).resolve()))
    arch = architecture(config.model)
    processor = AutoProcessor.from_pretrained(config.model)
    train, evaluation = load_splits(config)
    lengths = measure_lengths(config, arch, processor, train)
    model = load_model(config, arch)
    dtype = _dtype(config)
    lengths["memory"] = memory_note(config.batch_size, lengths["longest"], model.config.get_text_config().vocab_size,
                                    sum(p.numel() for p in model.parameters()), torch.finfo(dtype).bits // 8)
    log.info("%s", lengths["memory"])
    args = SFTConfig(
        output_dir=config.output_dir,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if evaluation is not None else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=not torch.cuda.is_available(),
        max_length=config.max_length,
        remove_unused_columns=False,  # the collators read image, prefix/suffix or messages
        dataset_kwargs={"skip_prepare_dataset": True},
        seed=config.seed,
        report_to=config.report_to,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    callbacks = []
    if evaluation is not None and config.eval_generate_samples > 0:
        rows = [evaluation[i] for i in range(min(config.eval_generate_samples, len(evaluation)))]
        callbacks.append(_label_accuracy_callback(config, arch, processor, rows))
    trainer = SFTTrainer(
        model=model, args=args, data_collator=collator_for(arch, processor, config.max_length, config.prefix_attention),
        train_dataset=train, eval_dataset=evaluation, processing_class=processor,
        peft_config=lora_config(config, arch), callbacks=callbacks,
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=_resume_from(config))
    metrics = dict(result.metrics)
    metrics["train_seconds"] = time.perf_counter() - started
    if evaluation is not None:
        metrics.update(trainer.evaluate())
    adapter = Path(config.output_dir) / "adapter"
    trainer.save_model(str(adapter))
    processor.save_pretrained(str(adapter))
    recipe(config, arch).save(adapter)
    record = {"config": dataclasses.asdict(config), "architecture": arch, "metrics": metrics,
              "adapter": str(adapter), "lengths": lengths}
    (Path(config.output_dir) / "finetune.json").write_text(json.dumps(record, indent=2, default=str))
    return record
