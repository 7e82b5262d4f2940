"""ASGI middleware: a request id, a log line and metrics for every request; a cap on body size.

Pure ASGI (not BaseHTTPMiddleware) so streamed answers pass through untouched and
the body cap holds for chunked uploads that carry no Content-Length.
Log lines name the request id, method, route, status and time, never the body.
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


class BodyLimit:
    """Reads the whole body up to `limit` bytes before the app sees it; more gets 413.

    An oversized body is read on (and dropped) up to twice the limit before answering, because
    HTTP clients send the whole body before reading a response: closing early shows them a
    connection reset instead of the 413. Beyond twice the limit the connection is simply closed.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

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
        payload = json.dumps(error_body(f"request body is larger than {self.limit:,} bytes",
                                        "invalid_request_error", None, "request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
