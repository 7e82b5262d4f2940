"""A stand-in OpenAI-compatible chat server on 127.0.0.1 for evaluator tests and benchmarks.

It speaks the real wire format (the official `openai` client talks to it unchanged),
decodes the image data URL, and answers through a function of (image bytes, prompt),
optionally after a fixed delay. It counts every request so callers can prove that
nothing was asked twice. Not a model: the evaluator's pipeline is what is under test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import multiprocessing
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

Answer = Callable[[bytes, str], str]


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sent_image_files(request: dict) -> list[tuple[str, bytes]]:
    """(media type, encoded bytes) of each image of a chat request's last message, in order: exactly what was sent."""
    parts = request["messages"][-1]["content"]
    files = []
    for part in parts:
        if part["type"] == "image_url":
            header, payload = part["image_url"]["url"].split(",", 1)
            files.append((header.removeprefix("data:").removesuffix(";base64"), base64.b64decode(payload)))
    return files


def sent_images(request: dict) -> list[np.ndarray]:
    """The images of a chat request's last message, decoded to RGB arrays, in order."""
    return [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for _, data in sent_image_files(request)]


def sent_text(request: dict) -> str:
    """The text part of a chat request's last message."""
    return next(p["text"] for p in request["messages"][-1]["content"] if p["type"] == "text")


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler that answers with JSON bodies: the base of the tests' stand-in servers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no delayed-ACK stalls

    def log_message(self, *_: object) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StandIn:
    def __init__(self, answer: Answer, delay: float = 0.0, root: str | None = None):
        self.answer, self.delay = answer, delay
        self.root = root  # the folder /v1/models names for the model, as vLLM names a LoRA adapter's
        self.hits: Counter = Counter()  # (image sha256, prompt) -> requests
        self.received: list[dict] = []  # every request body, in arrival order (what the model was sent)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> int:
        return sum(self.hits.values())

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/").endswith("/standin/hits"):
                    with standin._lock:
                        hits = [[digest, prompt, n] for (digest, prompt), n in standin.hits.items()]
                    self._send(200, {"hits": hits})
                elif self.path.rstrip("/").endswith("/models"):
                    entry = {"id": "standin", "object": "model"} | ({"root": standin.root} if standin.root else {})
                    self._send(200, {"object": "list", "data": [entry]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                try:
                    request = json.loads(self.rfile.read(length))
                    content = request["messages"][-1]["content"]
                    url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
                    prompt = next(p["text"] for p in content if p["type"] == "text")
                    image = base64.b64decode(url.split(",", 1)[1])
                except (ValueError, KeyError, StopIteration, IndexError, TypeError) as error:
                    self._send(400, {"error": {"message": f"bad request: {error}"}})
                    return
                with standin._lock:
                    standin.hits[(image_digest(image), prompt)] += 1
                    standin.received.append(request)
                if standin.delay:
                    time.sleep(standin.delay)
                text = standin.answer(image, prompt)
                self._send(200, {
                    "id": "chatcmpl-standin", "object": "chat.completion", "created": int(time.time()),
                    "model": request.get("model", "standin"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

        return Handler


def _serve(answer: Answer, delay: float, connection) -> None:
    with StandIn(answer, delay) as server:
        connection.send(server.base_url)
        connection.recv()  # until the parent says stop (or dies: recv raises EOFError)


class StandInProcess:
    """The same server in a forked child: its own interpreter and GIL, as a real model server has.

    Benchmarks use it so the client's cost is measured alone, not the server's too.
    """

    def __init__(self, answer: Answer, delay: float = 0.0):
        context = multiprocessing.get_context("fork")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(answer, delay, child), daemon=True)
        self.base_url = ""

    @property
    def hits(self) -> Counter:
        with urllib.request.urlopen(f"{self.base_url}/standin/hits", timeout=30) as response:
            return Counter({(d, p): n for d, p, n in json.load(response)["hits"]})

    @property
    def requests(self) -> int:
        return sum(self.hits.values())

    @property
    def pid(self) -> int | None:
        """The server's process (benchmarks leave its CPU out of the client's)."""
        return self._process.pid

    def __enter__(self) -> StandInProcess:
        self._process.start()
        self.base_url = self._connection.recv()
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.send("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
