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


def _location(loc: tuple) -> str:
    """('body', 'messages', 0, 'content') -> 'messages[0].content' (OpenAI's `param` style)."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "-" in str(part):  # pydantic's union/tagged-union branch names
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    if not errors:
        return APIError(400, "invalid request", code="invalid_request")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return APIError(400, "the request body is not valid JSON", code="invalid_json")
    param = _location(tuple(first.get("loc", ()))) or None
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
        return error_response(APIError(status, message, code=code, headers=exc.headers), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug of ours, not the client's: keep serving, say so without details, keep the trace in the log.
        log.exception("request %s failed", getattr(request.state, "request_id", "-"))
        return error_response(APIError(500, "internal error; the request id is in the X-Request-ID header",
                                       type="server_error", code="internal_error"), request)
