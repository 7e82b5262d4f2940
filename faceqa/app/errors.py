"""Every failure leaves the server as OpenAI's error object, with a 4xx status where the client is at fault.

Clients written for OpenAI (the openai package, LangChain) parse `{"error": {...}}`
to raise their own typed exceptions, so the shape matters as much as the status.
Messages never quote the request body: it may carry image bytes.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("faceqa.app")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """A request we refuse, with what OpenAI clients need to show why."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(error: APIError, request: Request | None = None) -> JSONResponse:
    if request is not None:
        request.state.error_code = error.code or error.type  # read by the metrics middleware
    return JSONResponse(error_body(error.message, error.type, error.param, error.code), status_code=error.status,
                        headers=error.headers)


def _location(error: dict, body: object) -> list[str | int]:
    """Where in the body an error is: ('body', 'messages', 0, 'content', 'str') -> ['messages', 0, 'content'].

    pydantic puts the name of each union member it tried into the location ('str',
    'list[...]', 'function-after[...]'); those are not in the request, so the location is
    followed through the body itself and only the keys and indexes found there are kept
    (and, for a missing field, its name).
    """
    loc = tuple(error.get("loc", ()))
    parts: list[str | int] = []
    node = body
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        if in_list or in_dict:
            node = node[part]  # type: ignore[index]
            parts.append(part)
    if error.get("type") == "missing" and loc and isinstance(loc[-1], str):
        parts.append(loc[-1])
    return parts


def _param(parts: list[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" if i else part
                   for i, part in enumerate(parts))


def validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    if not errors:
        return APIError(400, "invalid request", code="invalid_request")
    if errors[0].get("type") == "json_invalid":
        return APIError(400, "the request body is not valid JSON", code="invalid_json")
    # The deepest location is the most specific (a union's members all fail; the one that got furthest says most).
    located = [(_location(error, exc.body), error) for error in errors]
    parts, first = max(located, key=lambda item: len(item[0]))
    param = _param(parts) or None
    # pydantic's `msg` describes the expectation, never the rejected value; `input` is left out on purpose.
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return APIError(400, message, param=param, code="invalid_value")


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code if 400 <= exc.status_code < 600 else 400
        message = exc.detail if isinstance(exc.detail, str) else "invalid request"
        code = {404: "not_found", 405: "method_not_allowed"}.get(status)
        return error_response(APIError(status, message, code=code, headers=dict(exc.headers or {}) or None),
                              request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug of ours, not the client's: keep serving, say so without details, keep the trace in the log.
        log.exception("request %s failed", getattr(request.state, "request_id", "-"))
        return error_response(APIError(500, "internal error; the request id is in the X-Request-ID header",
                                       type="server_error", code="internal_error"), request)
