"""`faceqa eval run` and `faceqa eval compare`: the evaluator's command line.

Mount with `app.add_typer(faceqa.eval.cli.app, name="eval")`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from faceqa.datasets.readers import FORMATS, SPLIT_NAMES, FaceRecord, LabelAudit, read_dataset
from faceqa.eval.predictor import AS_IS, AUTO, ModelImage, Predictor, trained_crop
from faceqa.finetune.crop import CropConfig
from faceqa.prompts.taxonomy import ATTRIBUTES
from faceqa.vlm.recipe import Recipe

app = typer.Typer(help="Measure a model's accuracy, overall and per group, and write its model card.",
                  no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _parse_tasks(text: str) -> tuple[str, ...]:
    from faceqa.eval.skills import SKILLS

    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    known = ATTRIBUTES + SKILLS
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise typer.BadParameter(f"unknown task(s) {', '.join(unknown) or '(none)'}; use {', '.join(known)}")
    return tasks


def _parse_columns(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise typer.BadParameter("write the mapping as field=column pairs, e.g. image=file,race=ethnicity,age=age")
    return {k.strip(): v.strip() for k, v in pairs}


def _records(path: Path, format: str, split: str | None, columns: str | None, attribute: str | None,
             affectnet_csv: Path | None, variant: str, audit: LabelAudit) -> Iterator[FaceRecord]:
    split = SPLIT_NAMES.get(split.lower(), split) if split else None
    options: dict = {}
    if format == "fairface":
        options["splits"] = (split or "validation",)
    elif format == "csv":
        options["columns"] = _parse_columns(columns)
    elif format == "imagefolder":
        if not attribute:
            raise typer.BadParameter("--attribute is needed for an image folder (which label do folders hold?)")
        options["attribute"] = attribute
    elif format == "affectnet":
        options["csv_path"] = affectnet_csv
        if affectnet_csv is None:  # the release: its validation.csv is what AffectNet results are reported on
            options["splits"] = (split or "validation",)
    elif format == "rafdb":
        options["variant"] = variant
    elif format == "built":
        options["split"] = split or "validation"
    records = read_dataset(format, path, audit=audit, **options)
    return (r for r in records if split is None or r.split == split)


def _check_choice(engine: bool, endpoint: str | None, model: str | None, transformers: Path | None) -> None:
    if engine + bool(endpoint) + bool(transformers) != 1:
        raise typer.BadParameter("choose one model: --engine, --endpoint URL with --model NAME, or --transformers DIR")
    if endpoint and not model:
        raise typer.BadParameter("--endpoint needs --model (the served model's name, e.g. from /v1/models)")


def _predictor(engine: bool, endpoint: str | None, model: str | None, api_key: str, transformers: Path | None,
               adapter: Path | None, style: str, max_tokens: int, crop: CropConfig | None = None,
               jpeg_quality: int | None = None) -> Predictor:
    """The chosen model as a predictor; with --ray, each actor calls this to build its own."""
    _check_choice(engine, endpoint, model, transformers)
    if transformers:
        from faceqa.eval.backend_predictor import VLMBackendPredictor
        from faceqa.vlm.transformers_backend import TransformersBackend

        name = f"transformers:{transformers.resolve().name}" + (f"+{adapter.resolve().name}" if adapter else "")
        return VLMBackendPredictor(TransformersBackend(transformers, adapter=adapter), name, style, max_tokens,
                                   image=ModelImage(crop, jpeg_quality))
    if engine:
        from faceqa.eval.engine_predictor import EngineVsLabels

        return EngineVsLabels()
    from faceqa.eval.openai_predictor import OpenAIEndpointPredictor

    assert endpoint and model  # _check_choice
    return OpenAIEndpointPredictor(endpoint, model, api_key=api_key, style=style, max_tokens=max_tokens,
                                   image=ModelImage(crop, jpeg_quality))


def _eval_crop(crop: str, recipe: Recipe | None, engine: bool) -> CropConfig | None:
    """What a VLM is shown: `--crop auto` is the build's crop the adapter's recipe records, else the images as-is."""
    if engine:
        if crop not in (AUTO, AS_IS):
            raise typer.BadParameter("--crop is for VLMs: the embedded engine finds and cuts faces itself")
        return None
    try:
        return trained_crop(crop, recipe)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _model_recipe(engine: bool, endpoint: str | None, model: str | None, api_key: str, transformers: Path | None,
                  adapter: Path | None, style: str, max_tokens: int) -> tuple[str, dict[str, str], Recipe | None]:
    """The prompt style to ask with ("auto": the adapter's recipe), what the model card records about it, the recipe.

    An endpoint is asked for its model list first, so a wrong name fails here, once,
    rather than as one 404 per item.
    """
    from faceqa.vlm.recipe import recipe_of, resolve_style, served_model

    if transformers and not engine:
        recipe, arch = recipe_of(adapter) if adapter else recipe_of(transformers)
        arch = arch or recipe_of(transformers)[1]
        where = str(adapter or transformers)
    elif endpoint and model and not engine:
        where = str(served_model(endpoint, model, api_key).get("root") or "")
        recipe, arch = recipe_of(where) if where else (None, None)
    else:
        return resolve_style(style, None, None), {}, None
    style = resolve_style(style, recipe, arch)
    card = {"prompt_style": style, "decoding": f"greedy (temperature 0), at most {max_tokens} new tokens"}
    if recipe is not None:
        card |= {"base_model": recipe.base_model, "adapter": where,
                 "prefix_attention": recipe.prefix_attention or "–"}
    elif transformers:
        card |= {"base_model": str(transformers)} | ({"adapter": str(adapter)} if adapter else {})
    return style, card, recipe


def _summary(report: dict) -> Table:
    table = Table(title=f"{report['model']['name']} on {report['dataset'].get('name')}")
    for column in ("task", "n", "accuracy [95% CI]", "macro-F1", "unanswered", "worst group gap"):
        table.add_column(column)
    for task, m in report["tasks"].items():
        ci = m["accuracy_ci"]
        gaps = [g["gap"]["accuracy_gap"] for g in m["groups"].values() if g["gap"]]
        table.add_row(task, str(m["n"]), f"{m['accuracy']:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else ""),
                      f"{m['macro_f1']:.1%}", f"{m['unanswered_rate']:.1%}", f"{max(gaps):.1%}" if gaps else "–")
    return table


@app.command()
def run(
    dataset: Annotated[Path, typer.Argument(help="Dataset root (or CSV file for --format csv).", exists=True)],
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}, facexbench.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: predictions, report, card, plots.")],
    engine: Annotated[bool, typer.Option("--engine", help="Evaluate the embedded face engine.")] = False,
    endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://host:8000/v1.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name at the endpoint.")] = None,
    api_key: Annotated[str, typer.Option(envvar="OPENAI_API_KEY", help="Endpoint key.")] = "EMPTY",
    transformers: Annotated[Path | None, typer.Option(help="Evaluate a local checkpoint folder in-process.")] = None,
    adapter: Annotated[Path | None, typer.Option(help="LoRA adapter folder for --transformers.")] = None,
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks.")] = ",".join(ATTRIBUTES),
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate only the first N images.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Calls in flight at once.")] = 8,
    split: Annotated[str | None, typer.Option(help="Only this split (train, validation, test; or val).")] = None,
    columns: Annotated[str | None, typer.Option(help="CSV mapping, e.g. image=file,race=eth,age=years.")] = None,
    attribute: Annotated[str | None, typer.Option(help="Image folder: the attribute its folders name.")] = None,
    affectnet_csv: Annotated[Path | None, typer.Option(help="AffectNet CSV (else per-class folders).")] = None,
    rafdb_variant: Annotated[str, typer.Option(help="RAF-DB images: aligned or original.")] = "aligned",
    cache: Annotated[Path | None, typer.Option(help="Prediction cache (default OUT/predictions.jsonl).")] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for the intervals.")] = 1000,
    min_group_size: Annotated[int, typer.Option(min=1, help="Smaller groups get a warning.")] = 30,
    prompt_style: Annotated[str, typer.Option(
        help="Prompts: auto (what the adapter was trained with), chat, or paligemma (bare prefix).")] = "auto",
    max_tokens: Annotated[int, typer.Option(min=1, help="Answer length limit for endpoints.")] = 64,
    crop: Annotated[str, typer.Option(
        help=f"What a VLM is shown: auto (the face crop its adapter was trained on, from the recipe; else the images "
             f"as they are), {AS_IS}, detect (find the face and cut it) or trust (the images are face crops).")]
    = "auto",
    dataset_name: Annotated[str | None, typer.Option(help="Dataset name for the card.")] = None,
    model_licence: Annotated[str | None, typer.Option(help="Model licence for the card.")] = None,
    training_data: Annotated[str | None, typer.Option(help="Training data for the card.")] = None,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    retry_failed: Annotated[bool, typer.Option(help="Ask again the inputs an earlier run recorded as failed.")]
    = False,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Run the predictions on Ray actors: `local` or a cluster address (head:6379); needs the "
                      "ray extra. Images and checkpoints must be on storage every node mounts.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Ray actors, each with its own model "
                                         "or client; --concurrency is split among them.")] = 2,
) -> None:
    """Run a model over a labelled dataset; resumable: run it again after an interruption."""
    from faceqa.cluster import RayMissing
    from faceqa.eval import cli_runs
    from faceqa.eval.evaluate import EvalConfig, evaluate
    from faceqa.eval.runner import EndpointFailing

    facexbench = format == "facexbench"  # multiple-choice questions, not labelled faces: own reader and report
    config = EvalConfig(_parse_tasks(tasks), limit, concurrency, seed, bootstrap, min_group_size, plots, progress,
                        retry_failed)
    skills = cli_runs.skills_requested(config.tasks, format)  # a bad mix of tasks fails before any call
    recipe: dict[str, str] = {}
    face_crop: CropConfig | None = None
    quality: int | None = None  # the build's JPEG quality, from the recipe
    try:
        if not facexbench:
            prompt_style, recipe, trained = _model_recipe(engine, endpoint, model, api_key, transformers, adapter,
                                                          prompt_style, max_tokens)
            face_crop = _eval_crop(crop, trained, engine)
            quality = trained.jpeg_quality if trained is not None else None
            if not engine:
                recipe["face_crop"] = ModelImage(face_crop, quality).describe()
    except ValueError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    if skills:
        if ray:
            raise typer.BadParameter("--ray runs labelled-face evaluations; skill tasks run in this process")
        cli_runs.run_skills(dataset, out, config, endpoint, model, api_key, prompt_style, max_tokens, split, cache)
        return
    factory = partial(_predictor, engine, endpoint, model, api_key, transformers, adapter, prompt_style, max_tokens,
                      face_crop, quality)
    try:
        if facexbench:
            if ray:
                raise typer.BadParameter("--ray runs labelled-face evaluations; facexbench runs in this process")
            predictor: Predictor = cli_runs.mcq_predictor(engine, endpoint, model, api_key, max_tokens)
        elif ray:
            from faceqa.cluster import RaySettings
            from faceqa.eval.ray_predictor import RayPredictor

            _check_choice(engine, endpoint, model, transformers)
            predictor = RayPredictor(factory, RaySettings(address=ray, workers=workers), concurrency)
        else:
            predictor = factory()
    except (ValueError, RayMissing) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    audit = LabelAudit()
    records = iter(()) if facexbench else _records(dataset, format, split, columns, attribute, affectnet_csv,
                                                    rafdb_variant, audit)
    card = recipe | {k: v for k, v in (("licence", model_licence), ("training_data", training_data)) if v}
    info = {"name": dataset_name or dataset.name, "format": format, "path": str(dataset), "split": split}
    try:
        if facexbench:
            report = cli_runs.evaluate_facexbench(dataset, predictor, out, config, dataset_name, card, cache)
        else:
            report = evaluate(records, predictor, out, config, dataset=info, model=card, cache_path=cache,
                              audit=audit)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted; answers so far are saved in {cache or out / 'predictions.jsonl'}: "
                      "run the same command again to resume.[/yellow]")
        raise typer.Exit(130) from None
    except (EndpointFailing, FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        predictor.close()
    stats = report["run"]
    if not facexbench and not any(m["n"] for m in report["tasks"].values()):
        skipped = "; ".join(f"{k} x{v['count']}" for k, v in audit.summary()["skipped_rows"].items())
        why = (f"{stats['failed']} calls failed" if stats["failed"] else
               f"{report['dataset']['items']} items read from {dataset} as {format}"
               + (f" (skipped: {skipped})" if skipped else ""))
        console.print(f"[red]error:[/red] nothing was evaluated: {why}; the report and card are empty")
        raise typer.Exit(1)
    console.print(cli_runs.table(report) if facexbench else _summary(report))
    console.print(f"calls made {stats['calls']}, cached {stats['cached']}, failed {stats['failed']}; "
                  f"report {out / 'report.json'}, card {out / 'model_card.md'}")
    if stats["failed"]:
        console.print(f"[yellow]{stats['failed']} calls failed and were left out; run again to retry them.[/yellow]")
    if stats["errors"]:
        console.print(f"[yellow]{stats['errors']} inputs raised an error and were recorded as failed; "
                      "--retry-failed asks them again.[/yellow]")


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="Run folder A (baseline).", exists=True, file_okay=False)],
    run_b: Annotated[Path, typer.Argument(help="Run folder B.", exists=True, file_okay=False)],
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Accuracy of B minus A on the items both runs scored, with McNemar p-values; published reference rows."""
    from faceqa.eval.compare import compare_runs
    from faceqa.eval.published import published_rows

    try:
        result = compare_runs(run_a, run_b, seed=seed)
    except FileNotFoundError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    result["published"] = published_rows(list(result["tasks"]))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"B ({run_b}) minus A ({run_a}), paired items")
    for column in ("task", "n", "A", "B", "B − A [95% CI]", "McNemar p"):
        table.add_column(column)
    for task, t in result["tasks"].items():
        interval = " [{:+.1%}, {:+.1%}]".format(*t["difference_ci"]) if t["difference_ci"] else ""
        table.add_row(task, str(t["n"]), f"{t['accuracy_a']:.1%}", f"{t['accuracy_b']:.1%}",
                      f"{t['difference']:+.1%}{interval}", f"{t['mcnemar_p']:.3g}")
    for row in result["published"]:
        table.add_row(f"{row['task']} ({row['model']}, {row['dataset']})", "–", "–", f"{row['accuracy']:.1%}",
                      row["note"], "–")
    Console().print(table)
    if result["only_in_a"] or result["only_in_b"]:
        console.print(f"not compared: {result['only_in_a']} scored only in A, {result['only_in_b']} only in B")
