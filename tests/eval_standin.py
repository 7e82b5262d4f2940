"""A stand-in OpenAI-compatible chat server on 127.0.0.1 for evaluator tests and benchmarks.

It speaks the real wire format (the official `openai` client talks to it unchanged),
decodes the image data URL, and answers through a function of (image bytes, prompt),
optionally after a fixed delay. It counts every request so callers can prove that
nothing was asked twice. Not a model: the evaluator's pipeline is what is under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = Callable[[bytes, str], str]


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StandIn:
    def __init__(self, answer: Answer, delay: float = 0.0):
        self.answer, self.delay = answer, delay
        self.hits: Counter = Counter()  # (image sha256, prompt) -> requests
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

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "standin", "object": "model"}]})
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
