"""A real uvicorn server on a free loopback port, for the API tests; throwaway HTTP servers; request builders."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import uvicorn
from conftest import EXAMPLES

from faceqa.app.config import ServerConfig
from faceqa.app.server import create_app


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def group_url() -> str:
    return data_url((EXAMPLES / "group.jpg").read_bytes())


def ask(question: str, *images: str, model: str = "faceqa-local", **extra) -> dict:
    """A chat-completions body with one user turn: the question, then the images."""
    parts = [{"type": "text", "text": question}] + [{"type": "image_url", "image_url": {"url": u}} for u in images]
    return {"model": model, "messages": [{"role": "user", "content": parts}], **extra}


@contextmanager
def running(config: ServerConfig, **app_options) -> Iterator[str]:
    """Serve `create_app(config)` from a thread; yields the base URL and stops the server afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config, **app_options), log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@contextmanager
def stand_in(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A throwaway HTTP server on a free loopback port (remote images, a VLM, what an SSRF would reach)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
