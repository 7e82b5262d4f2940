"""CLI commands of faceqa.vlm: `serve-vlm` and `dev make-tiny-vlm/make-tiny-lora`.

Mounted into the `faceqa` command with `app.add_typer(faceqa.vlm.cli.app)` (no name:
the commands join the top level).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)
dev_app = typer.Typer(help="Developer tools: tiny offline checkpoints for tests.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")


def _parse_loras(specs: list[str]) -> dict[str, str]:
    loras = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"expected NAME=PATH, got {spec!r}", param_hint="--lora")
        if not Path(path, "adapter_config.json").is_file():
            raise typer.BadParameter(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
        loras[name] = path
    return loras


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command("serve-vlm")
def serve_vlm(
    model: Annotated[str, typer.Argument(help="Checkpoint folder (or hub id where the hub is reachable).")],
    lora: Annotated[
        list[str], typer.Option(help="LoRA adapter to serve as NAME=PATH; repeatable. Language model only.")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 8001 by default so the faceqa API keeps 8000.")] = 8001,
    served_model_name: Annotated[str | None, typer.Option(help="Model name clients send.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or gpu; auto picks gpu when nvidia-smi works.")] = "auto",
    tensor_parallel_size: Annotated[int, typer.Option(help="GPUs a model is split across, per node.")] = 1,
    pipeline_parallel_size: Annotated[int, typer.Option(help="Pipeline stages (nodes, with Ray).")] = 1,
    distributed_executor_backend: Annotated[str | None, typer.Option(help="mp or ray (multi-node).")] = None,
    max_model_len: int | None = None,
    max_num_seqs: int | None = None,
    dtype: str | None = None,
    limit_images: Annotated[int | None, typer.Option(help="Images per request (PaliGemma: 1).")] = None,
    chat_template: Annotated[str | None, typer.Option(help="Jinja file; PaliGemma gets faceqa's by default.")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="FACEQA_VLLM_API_KEY", help="Require this key.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for /health.")] = 900.0,
    vllm_arg: Annotated[list[str], typer.Option(help="Extra vLLM argument, passed verbatim; repeatable.")] = [],  # noqa: B006
) -> None:
    """Start vLLM's OpenAI-compatible server for MODEL, wait until healthy, print the endpoint.

    vLLM applies LoRA adapters of multimodal models to the language model only; to
    serve an adapter that changed the vision tower, merge it first (faceqa finetune merge)
    and serve the merged folder. Stop with Ctrl-C.
    """
    from .serve import ServeConfig, ServeError, VLLMServer, has_gpu, recipe_warnings

    if device not in ("auto", "cpu", "gpu"):
        raise typer.BadParameter("device must be auto, cpu or gpu", param_hint="--device")
    config = ServeConfig(
        model=model,
        served_model_name=served_model_name,
        loras=_parse_loras(lora),
        host=host,
        port=port,
        cpu=device == "cpu" or (device == "auto" and not has_gpu()),
        dtype=dtype,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        distributed_executor_backend=distributed_executor_backend,
        limit_images=limit_images,
        chat_template=chat_template,
        api_key=api_key,
        extra_args=vllm_arg,
    )
    for warning in recipe_warnings(config):
        typer.echo(f"warning: {warning}", err=True)
    try:
        server = VLLMServer(config)
    except ServeError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"starting vLLM ({'CPU' if config.cpu else 'GPU'}) for {model}; log: {server.log_path}", err=True)
    # A service manager stops us with SIGTERM: treat it as Ctrl-C so vLLM goes down with us.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()
        server.wait_ready(timeout)
        typer.echo(f"ready in {server.startup_seconds:.0f} s")
        typer.echo(f"endpoint: {server.base_url}")
        names = [served_model_name or model, *config.loras]
        typer.echo(f"models: {', '.join(names)}")
        process = server.process
        assert process is not None  # started above
        process.wait()
        typer.echo(f"vLLM exited with code {process.returncode}:\n{server.log_tail()}", err=True)
        raise typer.Exit(1)
    except ServeError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopping vLLM", err=True)
    finally:
        server.stop()


@dev_app.command("make-tiny-vlm")
def make_tiny_vlm_command(
    arch: Annotated[str, typer.Argument(help="paligemma, llava or idefics3.")],
    out: Annotated[Path, typer.Argument(help="Folder to write.")],
    seed: int = 0,
    lora: Annotated[Path | None, typer.Option(help="Also write a random LoRA adapter for it here.")] = None,
    paligemma1: Annotated[bool, typer.Option(help="PaliGemma: a tokenizer that adds <bos> (PaliGemma 1's).")] = False,
) -> None:
    """Write a randomly initialised tiny checkpoint of ARCH (for tests; its words are random)."""
    from faceqa.dev.tiny import ARCHS, make_tiny_lora, make_tiny_vlm

    if arch not in ARCHS:
        raise typer.BadParameter(f"choose one of {', '.join(ARCHS)}", param_hint="ARCH")
    typer.echo(make_tiny_vlm(arch, out, seed=seed, add_bos_token=paligemma1))
    if lora is not None:
        typer.echo(make_tiny_lora(out, lora, seed=seed))


if __name__ == "__main__":  # `python -m faceqa.vlm.cli serve-vlm ...`: vLLM's image has no faceqa console script
    app()
