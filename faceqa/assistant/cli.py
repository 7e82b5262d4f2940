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
        typer.Option("--json", help='Print {"answer", "task", "faces", "boxes", "result", "reasoning", "status"}.'),
    ] = False,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per model.")] = 1,
    backend: Annotated[
        str, typer.Option(help="Who reads the attributes: 'local' (embedded models) or 'vlm' (a served VLM).")
    ] = "local",
    base_url: Annotated[
        str | None, typer.Option(help="--backend vlm: the OpenAI-compatible server, e.g. http://127.0.0.1:8001/v1.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="--backend vlm: the model name on that server.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="FACEQA_VLM_API_KEY", help="--backend vlm: its key.")] = None,
    prompt_style: Annotated[str, typer.Option(
        help="--backend vlm: prompt wording, auto (what the served adapter was trained with), chat or paligemma.")
    ] = "auto",
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

    attributes = None
    if backend == "vlm":
        if not (base_url and model):
            err.print("[red]error:[/red] --backend vlm needs --base-url and --model", highlight=False)
            raise typer.Exit(2)
        from faceqa.vlm.attributes import served_attributes
        from faceqa.vlm.recipe import served_recipe

        try:
            style, recipe = served_recipe(prompt_style, base_url, model, api_key)
        except ValueError as error:
            err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        attributes = served_attributes(base_url, model, api_key, style, recipe=recipe)
    elif backend != "local":
        err.print(f"[red]error:[/red] unknown backend {backend!r}: use local or vlm", highlight=False)
        raise typer.Exit(2)
    engine = FaceEngine(EngineConfig(threads=threads))
    if attributes is not None:  # the VLM also answers hard referents, expression reasoning and open questions
        from faceqa.vlm.answers import VLMAssistant

        assistant: Assistant = VLMAssistant(attributes.backend, style=style, attributes=attributes, engine=engine)
    else:
        assistant = Assistant(engine)
    try:
        answer = assistant.answer([Path(i) for i in images], question)
    except (BadImage, ValueError, artifacts.ArtifactError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    failures = getattr(attributes, "last_failures", [])
    unanswered = [f for f in failures if f.kind == "no_answer"]
    if unanswered and len(unanswered) == getattr(attributes, "last_attempts", 0):
        reason = unanswered[0].reason
        err.print(f"[red]error:[/red] the VLM gave no answers ({reason})", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(answer.model_dump(mode="json"), ensure_ascii=False))
    else:
        print(answer.text)
