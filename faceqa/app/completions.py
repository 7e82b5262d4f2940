"""From the assistant's Answer to OpenAI's completion objects: text or JSON, cut, counted, streamed.

faceqa-local is deterministic, so `n` choices are the same answer and `temperature`
changes nothing. `max_tokens` and `stop` cut the text the way OpenAI does (and say so
in `finish_reason`); JSON answers are the Answer record, or the part of it a
requested JSON Schema asks for, and are checked against that schema before leaving
(response_schema.py bounds and checks the schema itself). Both `output_format` and `reply`
do CPU work on client input, so the server calls them from a worker thread.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from faceqa.schema import Answer

from . import response_schema
from .config import ServerConfig
from .dialogue import count_tokens
from .errors import APIError
from .openai_schema import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
)

_TOKEN_ENDS = re.compile(r"(?:\w+|[^\w\s])\s*")
_ANSWER_FIELDS = frozenset(Answer.model_fields)


@dataclass
class Format:
    kind: str = "text"
    schema: dict | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    include_usage: bool = False


def output_format(request: ChatCompletionRequest, config: ServerConfig) -> Format:
    """Everything about the output the request asks for, refused before any model work if impossible."""
    n = request.n or 1
    if n > config.max_choices:
        raise APIError(400, f"n={n} is over this server's limit of {config.max_choices}", param="n",
                       code="invalid_value")
    limits = [t for t in (request.max_tokens, request.max_completion_tokens) if t is not None]
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stop) > 4 or any(not s for s in stop):
        raise APIError(400, "stop takes up to 4 non-empty strings", param="stop", code="invalid_value")
    wanted = request.response_format
    kind = wanted.type if wanted else "text"
    schema = None
    if wanted is not None and wanted.type == "json_schema":
        if wanted.json_schema is None:
            raise APIError(400, "response_format json_schema needs a json_schema object",
                           param="response_format.json_schema", code="invalid_value")
        schema = wanted.json_schema.schema_
        if schema is not None:
            response_schema.check(schema)
            _check_satisfiable(schema)
    include_usage = bool(request.stream and request.stream_options and request.stream_options.include_usage)
    return Format(kind, schema, min(limits) if limits else None, stop, n, include_usage)


def _check_satisfiable(schema: dict) -> None:
    required = schema.get("required")
    missing = set(required) - _ANSWER_FIELDS if isinstance(required, list) else set()
    if missing:
        raise response_schema.refused(
            f"the schema requires {', '.join(sorted(map(str, missing)))}, which faceqa's answers do not have; "
            f"answers have {', '.join(sorted(_ANSWER_FIELDS))}", "response_format_unsatisfiable")


def content(answer: Answer, fmt: Format) -> str:
    if fmt.kind == "text":
        return answer_text(answer)
    record = answer.model_dump(mode="json")
    if fmt.schema is None:
        return json.dumps(record)
    return json.dumps(fit(record, fmt.schema))


def answer_text(answer: Answer) -> str:
    return answer.text


def fit(record: dict, schema: dict) -> dict:
    """The whole Answer if it validates, else only the fields the schema names; refused if neither does."""
    properties = schema.get("properties")
    candidates = [record]
    if isinstance(properties, dict):
        candidates.append({k: v for k, v in record.items() if k in properties})
    found = response_schema.best_error(schema, candidates)
    if isinstance(found, dict):
        return found
    where = "/".join(map(str, found.absolute_path)) or "the answer"
    raise response_schema.refused(f"faceqa's answer does not fit the requested JSON Schema ({where}: "
                                  f"{found.message})", "response_format_unsatisfiable")


def cut(text: str, fmt: Format) -> tuple[str, str]:
    """Apply stop strings, then max_tokens; returns the text and its finish_reason."""
    for stop in fmt.stop:
        at = text.find(stop)
        if at >= 0:
            text = text[:at]
    if fmt.max_tokens is not None and count_tokens(text) > fmt.max_tokens:
        ends = [m.end() for m in _TOKEN_ENDS.finditer(text)]
        return text[: ends[fmt.max_tokens - 1]].rstrip(), "length"
    return text, "stop"


@dataclass
class Reply:
    """One finished answer, ready to be sent whole or as a stream."""

    model: str
    answer: Answer
    text: str
    finish_reason: str
    usage: Usage
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def reply(model: str, answer: Answer, fmt: Format, prompt_tokens: int) -> Reply:
    text, finish_reason = cut(content(answer, fmt).strip(), fmt)
    completion_tokens = count_tokens(text) * fmt.n
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                  total_tokens=prompt_tokens + completion_tokens)
    return Reply(model, answer, text, finish_reason, usage)


def completion(r: Reply, fmt: Format) -> ChatCompletion:
    choices = [Choice(index=i, message=AssistantMessage(content=r.text), finish_reason=r.finish_reason)
               for i in range(fmt.n)]
    return ChatCompletion(id=r.id, created=r.created, model=r.model, choices=choices, usage=r.usage, faceqa=r.answer)


def stream(r: Reply, fmt: Format, words_per_chunk: int = 4) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`."""

    def event(choices: list[ChunkChoice], usage: Usage | None = None, answer: Answer | None = None) -> str:
        chunk = ChatCompletionChunk(id=r.id, created=r.created, model=r.model, choices=choices, usage=usage,
                                    faceqa=answer)
        return f"data: {chunk.model_dump_json(exclude=None if answer else {'faceqa'})}\n\n"

    pieces = [m.group() for m in _TOKEN_ENDS.finditer(r.text)]
    for index in range(fmt.n):
        yield event([ChunkChoice(index=index, delta=Delta(role="assistant", content=""))])
        for at in range(0, len(pieces), words_per_chunk):
            yield event([ChunkChoice(index=index, delta=Delta(content="".join(pieces[at:at + words_per_chunk])))])
        yield event([ChunkChoice(index=index, delta=Delta(), finish_reason=r.finish_reason)], answer=r.answer)
    if fmt.include_usage:
        yield event([], r.usage)
    yield "data: [DONE]\n\n"
