"""Commands `build-dataset`, `finetune CONFIG.yaml` and `finetune merge`, mounted by faceqa's CLI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .tasks import SAMPLE_KINDS

app = typer.Typer(no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


class _TrainByDefault(TyperGroup):
    """`finetune CONFIG.yaml` trains; `finetune merge ...` merges. Click alone cannot take both forms."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["train", *args]
        return super().parse_args(ctx, args)


finetune_app = typer.Typer(cls=_TrainByDefault, no_args_is_help=True, add_completion=False,
                           help="LoRA/QLoRA fine-tuning: `finetune CONFIG.yaml`, `finetune merge ...`.")
app.add_typer(finetune_app, name="finetune")


@app.command("build-dataset")
def build_dataset(
    datasets: Annotated[list[str], typer.Argument(
        help="FORMAT=PATH[,key=value...]; FORMAT is fairface, utkface, affectnet, rafdb, csv or imagefolder. "
             "Options are the reader's: affectnet=DIR[,max_per_class=N][,csv_path=FILE]; rafdb=DIR,variant=original; "
             "imagefolder=DIR,attribute=emotion; csv=FILE,image=COL,age=COL,emotion=COL,...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (Parquet shards per split).")],
    tasks: Annotated[str, typer.Option(help=f"Comma-separated, from: {', '.join(SAMPLE_KINDS)}.")] = (
        ",".join(SAMPLE_KINDS)),
    crop: Annotated[str, typer.Option(help="detect: find and cut out the face; trust: images are face crops.")]
    = "detect",
    margin: Annotated[float, typer.Option(help="Context around the detected face, share of its size per side.")]
    = 0.25,
    size: Annotated[int, typer.Option(help="Side of the square face crops and collages, pixels.")] = 224,
    split: Annotated[str, typer.Option(help="auto (the dataset's own split, else hash), native or hash.")] = "auto",
    val_fraction: Annotated[float, typer.Option(help="Share of identities/files in validation (hash split).")]
    = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of splits, paraphrases and collages.")] = 0,
    dedup_distance: Annotated[int, typer.Option(help="dHash bits within which two faces are duplicates; -1: off.")]
    = 4,
    composite_every: Annotated[int, typer.Option(help="One multi-person collage per N faces of a split; 0: none.")]
    = 8,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Run the per-face work on Ray: `local` (a Ray instance on this machine) or a cluster "
                      "address (head:6379); needs the ray extra. Default: in this process.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Ray actors doing the per-face work.")]
    = 2,
    shard_size: Annotated[int, typer.Option(help="Source rows per committed shard (the resume granularity).")]
    = 1000,
    overwrite: Annotated[bool, typer.Option(help="Delete OUT first instead of resuming.")] = False,
    push_to_hub: Annotated[str | None, typer.Option(help="Also push the dataset to this Hub repo id.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Build an instruction dataset of questions about faces; run it again to resume an interrupted build."""
    from faceqa.cluster import RayMissing, RaySettings

    from .build import BuildConfig, Source, run_build
    from .crop import CropConfig
    from .worker import FaceJobConfig

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
        unknown = sorted(set(chosen) - set(SAMPLE_KINDS))
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; use {', '.join(SAMPLE_KINDS)}")
        job = FaceJobConfig(crop=CropConfig(crop, margin, size), tasks=chosen, split=split,
                            val_fraction=val_fraction, seed=seed)
        cluster = RaySettings(address=ray, workers=workers) if ray else None
        config = BuildConfig(job=job, dedup_distance=dedup_distance, ray=cluster, shard_size=shard_size,
                             composite_every=composite_every)
        summary = run_build([Source.parse(d) for d in datasets], out, config, overwrite=overwrite,
                            progress=progress)
    except (ValueError, FileNotFoundError, RayMissing) as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(2) from None
    _print_summary(summary)
    if push_to_hub:
        from .store import load_built

        load_built(out).push_to_hub(push_to_hub)
        console.print(f"pushed to {push_to_hub}")


def _print_summary(summary: dict) -> None:
    table = Table(title=f"{summary['output']}: faces per label (label balance)")
    splits = sorted(summary["balance"])
    table.add_column("attribute")
    table.add_column("label")
    for split in splits:
        table.add_column(split, justify="right")
    rows = sorted({(a, label) for s in splits for a, labels in summary["balance"][s].items() for label in labels})
    for attribute, label in rows:
        table.add_row(attribute, label, *(str(summary["balance"][s].get(attribute, {}).get(label, 0))
                                          for s in splits))
    console.print(table)
    console.print("rows: " + ", ".join(f"{s} {n}" for s, n in sorted(summary["rows"].items())))
    dropped = summary["dropped"]
    if dropped:
        console.print("dropped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())))
    audit = summary["audit"]
    for kind in ("unmapped_labels", "skipped_rows"):
        for key, entry in audit.get(kind, {}).items():
            console.print(f"{kind.replace('_', ' ')}: {key} x{entry['count']} (e.g. {entry['examples'][0]})")
    for split, tasks in summary["target_chars"].items():
        console.print(f"target characters ({split}): " + ", ".join(
            f"{task} mean {s['mean']:.0f} p95 {s['p95']} max {s['max']}" for task, s in tasks.items()))
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)


@finetune_app.command("train", hidden=True)
def finetune_train(
    config: Annotated[Path, typer.Argument(help="YAML file of settings (see faceqa/finetune/configs/).", exists=True,
                                           dir_okay=False)],
    output_dir: Annotated[str | None, typer.Option(help="Override the config's output_dir.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override the config's max_steps.")] = None,
) -> None:
    """Fine-tune with LoRA/QLoRA as CONFIG says; resumes from OUTPUT_DIR's last checkpoint by default."""
    from .train import load_config, run_finetune

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_config(config, output_dir=output_dir, max_steps=max_steps)
        record = run_finetune(settings)
    except (ValueError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(2) from None
    metrics = record["metrics"]
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
             if k in ("train_loss", "eval_loss", "eval_label_accuracy", "train_samples_per_second", "train_seconds")}
    console.print(f"adapter: {record['adapter']}")
    console.print(", ".join(f"{k} {v}" for k, v in shown.items()))


@finetune_app.command("merge")
def finetune_merge(
    adapter: Annotated[Path, typer.Argument(help="Adapter folder (OUTPUT_DIR/adapter) or a fine-tune OUTPUT_DIR.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the merged checkpoint.")],
    base: Annotated[str | None, typer.Option(help="Base checkpoint; default: the one the adapter was trained on.")]
    = None,
) -> None:
    """Fold the adapter into its base model: a plain checkpoint vLLM serves without --lora-modules."""
    import json

    from faceqa.vlm.checkpoint import merge_lora

    if not (adapter / "adapter_config.json").is_file() and (adapter / "adapter" / "adapter_config.json").is_file():
        adapter = adapter / "adapter"
    settings = adapter / "adapter_config.json"
    if not settings.is_file():
        console.print(f"[red]error:[/red] {adapter} is not a PEFT adapter folder (no adapter_config.json)")
        raise typer.Exit(2)
    base = base or json.loads(settings.read_text()).get("base_model_name_or_path")
    if not base:
        console.print("[red]error:[/red] the adapter does not name its base model; pass --base")
        raise typer.Exit(2)
    if not Path(base).is_dir() and not Path(base).is_absolute() and (adapter / base).is_dir():
        base = str(adapter / base)  # a relative base recorded by an older faceqa: relative to where it trained
    try:
        console.print(f"merged checkpoint: {merge_lora(Path(base), adapter, out)}")
    except (OSError, ValueError) as error:  # transformers' "not a local folder and not on the hub" and kin
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        console.print(f"[red]error:[/red] cannot load the base model {base!r} ({first}); pass --base PATH",
                      soft_wrap=True)
        raise typer.Exit(2) from None
