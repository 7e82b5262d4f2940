"""The OpenAI-compatible HTTP server: chat completions with photos, face analysis, health, metrics.

`create_app(config)` builds one FastAPI app per configuration, so the OpenAPI document
describes exactly this server: its models, whether it wants a key, its error responses.
Request handlers only parse, check and format; model work runs on the service's
worker threads (service.py), images are resolved by the policy (policy.py).

The event loop does no unbounded work for a request, so /health answers while any
request runs: the body is capped in bytes and JSON values before it is parsed
(middleware.py), the text of the messages is capped before it is counted, and the
response_format schema is checked on a thread of its own and applied on a worker thread
(response_schema.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Request, Security
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from faceqa import __version__
from faceqa.schema import ImageError

from . import errors
from .completions import completion, output_format, reply, stream
from .config import VLM_MODEL, ServerConfig
from .dialogue import UserTurn, count_tokens, message_text, user_turns
from .errors import APIError
from .metrics import Metrics
from .middleware import BodyLimit, HostCheck, RequestContext
from .openai_schema import (
    AnalyzeRequest,
    ChatCompletion,
    ChatCompletionRequest,
    ErrorResponse,
    FaceAnalysis,
    Health,
    ModelCard,
    ModelList,
)
from .policy import ImageFetcher, check_api_key
from .service import RequestImage, Service

MAX_JSON_ITEMS = 50_000  # JSON objects, arrays and commas in a request body; real requests have a few hundred
_ERROR_TEXT = {
    400: "Invalid request: malformed JSON, wrong types, a refused or broken image, a limit exceeded.",
    401: "Missing or wrong API key.",
    404: "Unknown model.",
    408: "The request took longer than the server's per-request timeout.",
    413: "The request body is over the server's size limit.",
    429: "Too many requests are waiting for a model worker; retry shortly.",
    502: "faceqa-vlm only: the VLM backend gave no usable answer.",
}
_STREAM = {"text/event-stream": {"schema": {"type": "string", "description": "With `stream: true`: "
                                            "ChatCompletionChunk objects as server-sent events, then [DONE]."}}}


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorResponse, "description": _ERROR_TEXT[code]} for code in codes}


_bearer = HTTPBearer(auto_error=False, description="An API key given to `faceqa serve --api-key`.")


async def _authorized(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> None:
    check_api_key(request.headers.get("authorization"), request.app.state.config.api_keys)


def create_app(config: ServerConfig, service: Service | None = None, fetcher: ImageFetcher | None = None) -> FastAPI:
    config.check()
    metrics = service.metrics if service is not None else Metrics()
    service = service or Service(config, metrics)
    fetcher = fetcher or ImageFetcher(config)
    started = int(time.time())
    # Checking a client's schema costs up to about a second of CPU: it gets a thread of its own, so schema
    # requests wait for each other and never for, or instead of, anyone's photos (asyncio's shared threads).
    schemas = ThreadPoolExecutor(1, thread_name_prefix="faceqa-schema")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.start)
        yield
        service.stop()
        schemas.shutdown(wait=False, cancel_futures=True)
        await fetcher.aclose()

    keyed = bool(config.api_keys)
    guarded = [Security(_authorized)] if keyed else []
    auth = (401,) if keyed else ()
    upstream = (502,) if VLM_MODEL in config.models else ()

    app = FastAPI(title="faceqa", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible API for faceqa: ask about the people in a photo. Attributes are "
                  "*apparent* (estimated from pixels, with a confidence), never facts about a person.")
    app.state.config = config
    errors.install(app)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, max_items=MAX_JSON_ITEMS)
    app.add_middleware(HostCheck, names=config.host_names)
    app.add_middleware(RequestContext, metrics=metrics)

    @asynccontextmanager
    async def deadline() -> AsyncIterator[float]:
        """The request's time limit; yields when it ends (time.monotonic()) for the work to stop by."""
        try:
            async with asyncio.timeout(config.request_timeout):
                yield time.monotonic() + config.request_timeout
        except TimeoutError:
            raise APIError(408, f"the request took longer than this server's {config.request_timeout:g} s limit",
                           code="request_timeout") from None

    def check_text(messages: list) -> None:
        size = sum(len(message_text(m)) for m in messages)
        if size > config.max_text_chars:
            raise APIError(400, f"the messages hold {size:,} characters of text, over this server's limit of "
                           f"{config.max_text_chars:,}", param="messages", code="text_too_long")

    async def fetch(turns: list[UserTurn]) -> list[RequestImage]:
        refs = [ref for turn in turns for ref in turn.images]
        return [RequestImage(await fetcher.fetch(ref.url, ref.param), ref.param) for ref in refs]

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """Liveness and readiness; never waits for a model worker."""
        return Health(version=__version__, models=list(config.models), workers=config.workers,
                      pending=service.pending)

    @app.head("/health", include_in_schema=False)
    async def health_head() -> Response:
        return Response(media_type="application/json")

    @app.get("/metrics", tags=["service"], dependencies=guarded, responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format."},
        **_errors(*auth)})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList, tags=["openai"], dependencies=guarded,
             responses=_errors(*auth))
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=model, created=started) for model in config.models])

    @app.get("/v1/models/{model}", response_model=ModelCard, tags=["openai"], dependencies=guarded,
             responses=_errors(*auth, 400, 404))
    async def get_model(model: str) -> ModelCard:
        service.check_model(model)
        return ModelCard(id=model, created=started)

    @app.post("/v1/chat/completions", response_model=ChatCompletion, tags=["openai"], dependencies=guarded,
              responses={200: {"content": _STREAM}, **_errors(400, *auth, 404, 408, 413, 429, *upstream)})
    async def chat_completions(body: ChatCompletionRequest):
        """Answer the last user message about the photos of the conversation (`image_url` parts)."""
        service.check_model(body.model)
        check_text(body.messages)
        turns = user_turns(body.messages, config)
        async with deadline() as until:
            if body.response_format is not None and body.response_format.type == "json_schema":
                fmt = await asyncio.get_running_loop().run_in_executor(schemas, output_format, body, config)
            else:
                fmt = output_format(body, config)
            answer = await service.converse(body.model, turns, await fetch(turns), until)
            prompt_tokens = sum(count_tokens(message_text(m)) for m in body.messages)
            result = await asyncio.to_thread(reply, body.model, answer, fmt, prompt_tokens)
        if body.stream:
            return StreamingResponse(stream(result, fmt), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        # Serialised here: FastAPI would validate the finished response model a second time.
        return Response(completion(result, fmt).model_dump_json(), media_type="application/json")

    @app.post("/v1/faces/analyze", response_model=FaceAnalysis, response_model_exclude_none=True, tags=["faces"],
              dependencies=guarded, responses=_errors(400, *auth, 404, 408, 413, 429, *upstream))
    async def analyze(body: AnalyzeRequest) -> FaceAnalysis:
        """Every face of each image, numbered left to right, in the shared face-report schema."""
        service.check_model(body.model)
        if len(body.images) > config.max_images:
            raise APIError(400, f"{len(body.images)} images is over this server's limit of {config.max_images}",
                           param="images", code="too_many_images")
        async with deadline() as until:
            inputs: list[RequestImage | ImageError] = []
            for index, url in enumerate(body.images):
                param = f"images[{index}]"
                try:
                    inputs.append(RequestImage(await fetcher.fetch(url, param), param))
                except APIError as error:  # one bad image never sinks the batch
                    remote = url.lower().startswith(("http:", "https:"))
                    inputs.append(ImageError(path=url[:2000] if remote else None, error=error.message))
            results = await service.analyze(body.model, inputs, body.embeddings, until)
        return FaceAnalysis(model=body.model, data=results)

    def openapi() -> dict:
        """FastAPI's document, made exact for this server: 400 rather than FastAPI's default 422 for invalid
        input, and `model` limited to the models it really serves."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema["components"]["schemas"]
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            for name in ("ChatCompletionRequest", "AnalyzeRequest"):
                components[name]["properties"]["model"]["enum"] = list(config.models)
            images = components["AnalyzeRequest"]["properties"]["images"]
            images["maxItems"] = config.max_images
            images["description"] += f" At most {config.max_images} (this server's limit)."
            messages = components["ChatCompletionRequest"]["properties"]["messages"]
            messages["maxItems"] = config.max_messages
            messages["description"] = (f"At most {config.max_messages} messages, {config.max_images} images in all, "
                                       f"{config.max_question_chars:,} characters per user message and "
                                       f"{config.max_text_chars:,} characters of text in all (this server's limits).")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
    return app
