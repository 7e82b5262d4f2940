"""ASGI middleware: a request id, a log line and metrics for every request; caps on the body; the Host check.

Pure ASGI (not BaseHTTPMiddleware) so streamed answers pass through untouched and
the body cap holds for chunked uploads that carry no Content-Length.
Log lines name the request id, method, route, status and time, never the body.

The body caps keep the event loop's own work on a request small: JSON is parsed and
validated on the loop (by FastAPI), and both cost time in proportion to the number of
values, so a body with more than `max_items` objects, arrays and commas is refused from a
byte count (no parsing) before any of it runs. Photos are single base64 strings, cheap
to parse whatever their size.

The Host check refuses requests whose Host header is not one of this server's names: a web
page cannot then reach a loopback server through a DNS name it rebinds to 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body
from .metrics import Metrics

log = logging.getLogger("faceqa.app")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            if status >= 400:
                self.metrics.errors.labels(template, state.get("error_code") or str(status)).inc()
            log.info("%s %s %s %d %.1fms", request_id, method, template, status, elapsed * 1000)


async def _refuse(send: Send, status: int, message: str, code: str, close: bool = False) -> None:
    """OpenAI's error object, sent from middleware (before FastAPI's exception handlers exist for it)."""
    payload = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": payload})


class HostCheck:
    """Answers only requests whose Host header names this server (`names`; None accepts any)."""

    def __init__(self, app: ASGIApp, names: frozenset[str] | None):
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.names is None:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "").lower()
        name = host.partition("]")[0].lstrip("[") if host.startswith("[") else host.rpartition(":")[0] or host
        if name not in self.names:
            scope.setdefault("state", {})["error_code"] = "invalid_host"
            await _refuse(send, 400, "the Host header does not name this server (DNS-rebinding protection; "
                          "see faceqa serve --allowed-host)", "invalid_host")
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Reads the whole body up to `limit` bytes before the app sees it; more gets 413, more than
    `max_items` JSON objects, arrays and commas gets 400.

    An oversized body is read on (and dropped) up to twice the limit before answering, because
    HTTP clients send the whole body before reading a response: closing early shows them a
    connection reset instead of the 413. Beyond twice the limit the connection is simply closed.
    """

    def __init__(self, app: ASGIApp, limit: int, max_items: int):
        self.app = app
        self.limit = limit
        self.max_items = max_items

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_large = declared.isdigit() and int(declared) > self.limit
        if declared.isdigit() and int(declared) > 2 * self.limit:
            await self._refuse(scope, send)
            return
        chunks, size, more = [], 0, True
        while more and size <= 2 * self.limit:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            data = message.get("body", b"")
            size += len(data)
            more = message.get("more_body", False)
            too_large = too_large or size > self.limit
            if not too_large:
                chunks.append(data)
        if too_large:
            await self._refuse(scope, send)
            return
        body = b"".join(chunks)
        if body.count(b",") + body.count(b"{") + body.count(b"[") > self.max_items:  # memchr speed, no parsing
            scope.setdefault("state", {})["error_code"] = "request_too_complex"
            await _refuse(send, 400, f"the request has more than {self.max_items:,} JSON values (this server's "
                          "limit)", "request_too_complex")
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        scope.setdefault("state", {})["error_code"] = "request_too_large"
        await _refuse(send, 413, f"request body is larger than {self.limit:,} bytes", "request_too_large",
                      close=True)
