"""`faceqa serve` (the OpenAI-compatible API) and `faceqa app` (the chat page), on 127.0.0.1 unless told otherwise.

Off loopback both need a secret (an API key, a password): one rule, `config.require_protection`.
Mounted with `app.command()(serve)` and `app.command("app")(chat_app)` in faceqa/cli.py.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import resources
from importlib.util import find_spec
from typing import Annotated

import typer

from .config import ServerConfig, require_protection

_defaults = ServerConfig()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs an API key.")] = (
        _defaults.host),
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0 picks a free one).")] = _defaults.port,
    api_key: Annotated[list[str] | None, typer.Option(
        "--api-key", envvar="FACEQA_API_KEY",
        help="Key clients must send as 'Authorization: Bearer <key>'; repeat for several.")] = None,
    allow_remote_origin: Annotated[list[str] | None, typer.Option(
        "--allow-remote-origin", help="Origin (scheme://host[:port]) whose image URLs may be fetched, redirects "
        "included; repeat for several. Without any, only data: URLs are accepted.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="Name clients may reach the server by (Host header); repeat for several. "
        "Default: the loopback names when listening on loopback, any otherwise; '*' accepts any.")] = None,
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
    workers: Annotated[int, typer.Option(min=1, help="Model workers per served model (one face engine each).")] = (
        _defaults.workers),
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
    prompt_style: Annotated[str, typer.Option(help="Prompt wording for the VLM: auto (what its adapter was trained "
                                               "with, found through the server), chat or paligemma.")] = "auto",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the assistant as an OpenAI-compatible API (chat completions with image_url parts)."""
    import uvicorn

    from faceqa.vlm.recipe import served_recipe

    from .server import create_app

    vlm_style, vlm_recipe = _defaults.vlm_style, _defaults.vlm_recipe
    if vlm_base_url and vlm_model:  # also checks, before serving anyone, that the VLM server has the model
        try:
            vlm_style, vlm_recipe = served_recipe(prompt_style, vlm_base_url, vlm_model, vlm_api_key)
        except ValueError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None

    config = ServerConfig(
        host=host, port=port, api_keys=tuple(api_key or ()), allow_remote_origins=tuple(allow_remote_origin or ()),
        remote_max_bytes=remote_max_bytes, remote_timeout=remote_timeout, max_body_bytes=max_body_bytes,
        max_images=max_images, max_pixels=max_pixels, max_messages=max_messages,
        max_question_chars=max_question_chars, request_timeout=timeout, workers=workers, threads=threads,
        max_pending=max_pending, cache_size=cache_size, vlm_base_url=vlm_base_url, vlm_model=vlm_model,
        vlm_api_key=vlm_api_key, vlm_style=vlm_style, vlm_recipe=vlm_recipe, allowed_hosts=tuple(allowed_host or ()),
    )
    try:
        config.check()
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Our middleware logs each request with its id; uvicorn's access log would only repeat it without one.
    uvicorn.run(create_app(config), host=config.bind_host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=5)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def chat_app(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --expose and "
                                           "--password.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the page.")] = 8501,
    expose: Annotated[bool, typer.Option("--expose", help="Allow listening off loopback (with --password).")] = (
        False),
    password: Annotated[str | None, typer.Option(
        envvar="FACEQA_APP_PASSWORD", help="Password the page asks for before showing anything.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="Host name browsers use to reach the page (Host-header check against DNS "
        "rebinding); repeat for several. Loopback names are always allowed.")] = None,
) -> None:
    """Open the chat page (Streamlit): drop in photos and ask about the people in them."""
    from faceqa.app.gate import PASSWORD_ENV

    try:
        require_protection(host, (password,) if password is not None else (),
                           "--expose and a password: pass --password or set FACEQA_APP_PASSWORD", opted_in=expose)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if find_spec("streamlit") is None:
        raise ModuleNotFoundError("No module named 'streamlit'", name="streamlit")  # main() names the extra
    os.execvpe(sys.executable, streamlit_command(host, port, allowed_host or []),
               {**os.environ, PASSWORD_ENV: password or ""})


def streamlit_command(host: str, port: int, allowed_hosts: list[str]) -> list[str]:
    """How `faceqa app` runs Streamlit: no usage statistics, no IP lookup, no banner, Host header checked.

    The Host allow-list (`server.allowedHosts`, checked on the page's WebSocket) keeps a
    DNS-rebinding page from driving the app through a victim's browser: loopback names,
    the address listened on (unless it is a wildcard), and every --allowed-host. With a
    wildcard address and no --allowed-host, any Host is let through and the password is
    the only door.
    """
    address = host.strip("[]")  # `--host [::1]`: Streamlit binds the bare IPv6 address
    names = [*LOOPBACK_NAMES, *allowed_hosts]
    if address not in ("0.0.0.0", "::"):
        names.append(address)
    elif not allowed_hosts:
        names = ["*"]
    page = resources.files("faceqa.app") / "chat.py"
    command = [sys.executable, "-m", "faceqa.app.launch", "run", str(page), "--server.address", address,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--logger.hideWelcomeMessage", "true", "--client.toolbarMode", "minimal",
               "--client.showErrorDetails", "none"]  # the page's error boundary aside, never a traceback
    for name in dict.fromkeys(names):
        command += ["--server.allowedHosts", name]
    print(f"faceqa chat page: http://{f'[{address}]' if ':' in address else address}:{port}", flush=True)
    return command
