"""`faceqa ask IMAGE... "question"`: the assistant on the command line.

Mounted by faceqa/cli.py with `app.command("ask")(ask)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from faceqa.images import BadImage

err = Console(stderr=True)


def ask(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGE... QUESTION",
            help="One or more photos (photo 1, 2, ... in order), then the question in quotes.",
            show_default=False,
        ),
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print {"answer", "task", "faces", "boxes", "attributes", "reasoning", "status"}.'),
    ] = False,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per model.")] = 1,
) -> None:
    """Ask about the people in photos: counts, apparent age/gender/emotion, comparisons, step-by-step expression."""
    if len(arguments) < 2:
        err.print(
            "[red]error:[/red] give at least one image, then the question: "
            'faceqa ask group.jpg "How many people are there?"',
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    *images, question = arguments
    from faceqa import artifacts
    from faceqa.faces.engine import EngineConfig, FaceEngine

    from .assistant import Assistant

    assistant = Assistant(FaceEngine(EngineConfig(threads=threads)))
    try:
        answer = assistant.answer([Path(i) for i in images], question)
    except (BadImage, ValueError, artifacts.ArtifactError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(answer.model_dump(mode="json"), ensure_ascii=False))
    else:
        print(answer.answer)
