"""`faceqa serve`: the OpenAI-compatible API on 127.0.0.1 unless told otherwise.

Mount with `app.command()(serve)` in faceqa/cli.py.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from .config import ServerConfig

_defaults = ServerConfig()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs an API key.")] = (
        _defaults.host),
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0 picks a free one).")] = _defaults.port,
    api_key: Annotated[list[str] | None, typer.Option(
        "--api-key", envvar="FACEQA_API_KEY",
        help="Key clients must send as 'Authorization: Bearer <key>'; repeat for several.")] = None,
    allow_remote_host: Annotated[list[str] | None, typer.Option(
        "--allow-remote-host", help="Host whose http(s) image URLs may be fetched; repeat for several. "
        "Without any, only data: URLs are accepted.")] = None,
    remote_max_bytes: Annotated[int, typer.Option(min=1, help="Size cap of one fetched image.")] = (
        _defaults.remote_max_bytes),
    remote_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to fetch one image URL.")] = (
        _defaults.remote_timeout),
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Request body size limit.")] = _defaults.max_body_bytes,
    max_images: Annotated[int, typer.Option(min=1, help="Images per request (whole conversation).")] = (
        _defaults.max_images),
    max_pixels: Annotated[int, typer.Option(min=1, help="Pixels per image.")] = _defaults.max_pixels,
    max_messages: Annotated[int, typer.Option(min=1, help="Messages per request.")] = _defaults.max_messages,
    max_question_chars: Annotated[int, typer.Option(min=1, help="Characters per question.")] = (
        _defaults.max_question_chars),
    timeout: Annotated[float, typer.Option(min=0.1, help="Per-request time limit in seconds.")] = (
        _defaults.request_timeout),
    workers: Annotated[int, typer.Option(min=1, help="Model workers (one face engine each).")] = _defaults.workers,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per model.")] = _defaults.threads,
    max_pending: Annotated[int, typer.Option(min=1, help="Requests allowed to wait for a worker; more get 429.")] = (
        _defaults.max_pending),
    cache_size: Annotated[int, typer.Option(min=0, help="Image analyses kept in memory (by image hash).")] = (
        _defaults.cache_size),
    vlm_base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible VLM server (e.g. vLLM at http://127.0.0.1:8001/v1); enables faceqa-vlm.")] = None,
    vlm_model: Annotated[str | None, typer.Option(help="Model name on the VLM server.")] = None,
    vlm_api_key: Annotated[str | None, typer.Option(envvar="FACEQA_VLM_API_KEY", help="Key for the VLM server.")] = (
        None),
    vlm_style: Annotated[str, typer.Option(help="Prompt wording for the VLM: chat, or paligemma.")] = (
        _defaults.vlm_style),
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the assistant as an OpenAI-compatible API (chat completions with image_url parts)."""
    import uvicorn

    from .server import create_app

    config = ServerConfig(
        host=host, port=port, api_keys=tuple(api_key or ()), allow_remote_hosts=tuple(allow_remote_host or ()),
        remote_max_bytes=remote_max_bytes, remote_timeout=remote_timeout, max_body_bytes=max_body_bytes,
        max_images=max_images, max_pixels=max_pixels, max_messages=max_messages,
        max_question_chars=max_question_chars, request_timeout=timeout, workers=workers, threads=threads,
        max_pending=max_pending, cache_size=cache_size, vlm_base_url=vlm_base_url, vlm_model=vlm_model,
        vlm_api_key=vlm_api_key, vlm_style=vlm_style,
    )
    try:
        config.check()
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Our middleware logs each request with its id; uvicorn's access log would only repeat it without one.
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=5)
