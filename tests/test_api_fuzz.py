"""Fuzzing the API: schemathesis against the server's own OpenAPI document (generated requests, no 5xx,
responses as documented), and hypothesis against the parsers that take hostile input first (data URLs, image
URLs and their redirects, response_format schemas).

Bounded: a few dozen examples per operation and a few hundred per parser, so the run takes about a minute.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from api_server import group_url, running
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from faceqa.app import completions, policy, response_schema
from faceqa.app.config import ServerConfig
from faceqa.app.errors import APIError
from faceqa.schema import Answer, CountResult

KEY = "fuzz-key"
PHOTO = group_url()
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]


OPERATIONS = ["GET /health", "GET /metrics", "GET /v1/models", "GET /v1/models/{model}",
              "POST /v1/chat/completions", "POST /v1/faces/analyze"]


@pytest.fixture(scope="module")
def api_schema():
    with running(ServerConfig(api_keys=(KEY,), max_body_bytes=4_000_000)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_every_operation_is_fuzzed(api_schema):
    assert sorted(result.ok().label for result in api_schema.get_all_operations()) == sorted(OPERATIONS)


# schemathesis' own pytest plugin does not run under pytest 9, so the hypothesis test is built here.
# Negative data (inputs the document forbids) only exists for operations that take inputs.
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in OPERATIONS if "{" in label or label.startswith("POST")]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label}-{mode.value}" for label, mode in CASES])
def test_openapi_contract(api_schema, label, mode):
    operation = api_schema.find_operation_by_label(label)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS, timeout=30)

    check()


@given(question=st.text(min_size=1, max_size=300), follow_up=st.text(max_size=100))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_any_question_about_a_real_photo_gets_an_answer(api_schema, question, follow_up):
    """The schema-driven run rarely gets past image decoding; here every request carries the real photo."""
    messages = [{"role": "user", "content": [{"type": "text", "text": question},
                                             {"type": "image_url", "image_url": {"url": PHOTO}}]}]
    if follow_up:
        messages += [{"role": "assistant", "content": "..."}, {"role": "user", "content": follow_up}]
    response = httpx.post(f"{api_schema.get_base_url().rstrip('/')}/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "faceqa-local", "messages": messages})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


@given(width=st.integers(1, 700), height=st.integers(1, 700), mode=st.sampled_from(["RGB", "L", "RGBA", "P", "I;16"]),
       fmt=st.sampled_from(["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]), seed=st.integers(0, 2**16))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_any_decodable_picture_gets_an_answer_or_a_4xx(api_schema, width, height, mode, fmt, seed):
    picture = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    try:
        picture.convert(mode).save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):  # a combination Pillow cannot write: nothing to send
        return
    url = f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()
    response = httpx.post(f"{api_schema.get_base_url().rstrip('/')}/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"}, json={"model": "faceqa-local", "messages": [
                              {"role": "user", "content": [{"type": "text", "text": "How old is everyone here?"},
                                                           {"type": "image_url", "image_url": {"url": url}}]}]})
    assert response.status_code == 200 or (response.status_code == 400 and response.json()["error"]["code"] in
                                             ("invalid_image",)), response.text


# --- property-based fuzzing of the data-URL parser, the image-URL policy and the schema checker ---------
# Deterministic and bounded like tests/test_fuzz.py (same knobs: FACEQA_FUZZ_EXAMPLES for a longer hunt by
# hand, FACEQA_FUZZ_SEED for other corners). A crasher found goes into tests/data/api_crashers/ as JSON
# ({"crashed_with": why, "schema": ...} or {"url": ..., "location": ...}), replayed below on every run.

FUZZ_CASES = int(os.environ.get("FACEQA_FUZZ_EXAMPLES", "250"))
SEED = int(os.environ.get("FACEQA_FUZZ_SEED", "0"))
FUZZ = settings(max_examples=FUZZ_CASES, deadline=None, database=None, derandomize=SEED == 0,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
CRASHERS = sorted((Path(__file__).parent / "data" / "api_crashers").glob("*.json"))
ALLOWED = "http://images.test"
ANSWER = Answer(answer="There are 4 people.", task="count", faces=[1, 2, 3, 4],
                boxes=[(90, 100, 124, 160), (387, 97, 135, 167), (689, 98, 120, 159), (975, 95, 143, 171)],
                result=CountResult(count=4, total=4)).model_dump(mode="json")


def _parses_or_refuses(url: str) -> None:
    try:
        data = policy.decode_data_url(url)
    except ValueError as error:
        assert str(error)
        return
    assert isinstance(data, bytes) and data


@given(url=st.text(max_size=300) | st.builds(lambda head, tail: f"data:{head},{tail}", st.text(max_size=60),
                                             st.text(max_size=60)))
@FUZZ
@seed(SEED)
def test_the_data_url_parser_returns_bytes_or_says_what_is_wrong(url):
    _parses_or_refuses(url)


@given(subtype=st.from_regex(r"[a-z0-9.+-]{1,12}", fullmatch=True), payload=st.binary(min_size=1, max_size=200),
       params=st.lists(st.tuples(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                                 st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)), max_size=3),
       upper=st.booleans())
@FUZZ
@seed(SEED)
def test_any_well_formed_data_url_gives_back_exactly_its_bytes(subtype, payload, params, upper):
    head = f"data:image/{subtype}" + "".join(f";{k}={v}" for k, v in params) + ";base64,"
    url = (head.upper() if upper else head) + base64.b64encode(payload).decode()
    assert policy.decode_data_url(url) == payload


def _fetched_or_refused(url: str, location: str | None) -> None:
    """Through the whole image-URL policy; redirects (any Location) come from an in-memory transport."""

    def answer(request: httpx.Request) -> httpx.Response:
        if location is not None and request.url.path == "/a":
            return httpx.Response(302, headers={"Location": location})
        return httpx.Response(200, content=b"image bytes")

    fetcher = policy.ImageFetcher(ServerConfig(allow_remote_origins=(ALLOWED,), remote_timeout=5),
                                  transport=httpx.MockTransport(answer))

    async def fetch() -> bytes:
        try:
            return await fetcher.fetch(url, "p")
        finally:
            await fetcher.aclose()

    try:
        data = asyncio.run(fetch())
    except APIError as error:
        assert error.status == 400 and error.param == "p" and error.message
        return
    assert data in (b"image bytes",) or url.lower().startswith("data:")


URL_PIECES = st.sampled_from(["http://", "https://", "HTTP://", "data:", "file:", "//", "images.test", "[::1",
                              "[::1]", ":80", ":abc", ":99999", "/a", "/b", "?x=1", "#f", "@", "%", "\x00", " ",
                              "127.0.0.1", "localhost", "image/png;base64,AAAA", ".."])


@given(url=st.lists(URL_PIECES, max_size=6).map("".join) | st.text(max_size=80),
       location=st.none() | st.lists(URL_PIECES, max_size=6).map("".join) | st.text(max_size=40))
@FUZZ
@seed(SEED)
def test_any_image_url_and_any_redirect_is_fetched_or_a_400(url, location):
    _fetched_or_refused(url, location)
    _fetched_or_refused(f"{ALLOWED}/a", location)


NAMES = [*Answer.model_fields, "pattern", "$ref", "type", "x"]
REFS = ["#", "#/$defs/a", "#/$defs/b", "#/definitions/a", "#/properties/answer", "#/properties/answer/type",
        "#/items", "#/items/0", "#/anyOf/0", "#/enum/0", "#/$defs/a/properties/x", "#/$defs/%61", "#/x~1y", "#a",
        "http://127.0.0.1:9/x", "file:///etc/passwd", 5, None]
TYPES = ["string", "object", "array", "integer", "number", "null", "boolean", 12, ["string", "null"], []]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                max_size=3), max_leaves=6)


def _schemas() -> st.SearchStrategy:
    leaf = st.booleans() | st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(TYPES), "enum": st.lists(JSON, max_size=3), "const": JSON,
        "minLength": st.integers(-1, 3), "maxItems": st.integers(0, 3), "minimum": st.integers(-1, 5),
        "format": st.sampled_from(["date", "regex", "uri"]), "$ref": st.sampled_from(REFS),
        "pattern": st.just("^(a+)+$"), "$dynamicRef": st.just("#meta")})

    def nested(children: st.SearchStrategy) -> st.SearchStrategy:
        many = st.lists(children, min_size=1, max_size=3)
        named = st.dictionaries(st.sampled_from(["a", "b", "x", "x/y"]), children, max_size=3)
        return st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(TYPES), "properties": st.dictionaries(st.sampled_from(NAMES), children,
                                                                          max_size=4),
            "items": children | many, "prefixItems": many, "anyOf": many, "allOf": many, "oneOf": many,
            "not": children, "if": children, "then": children, "else": children, "contains": children,
            "additionalProperties": children, "$defs": named, "definitions": named, "dependencies": named,
            "patternProperties": named, "$ref": st.sampled_from(REFS), "$id": st.sampled_from(["#x", "http://h/"]),
            "required": st.lists(st.sampled_from(NAMES + ["mood"]), max_size=3), "enum": st.lists(JSON, max_size=2),
            "$schema": st.sampled_from(["https://json-schema.org/draft/2020-12/schema",
                                        "http://json-schema.org/draft-07/schema#", "http://json-schema.org/schema",
                                        "http://json-schema.org/draft-04/schema#", 5, []]),
            "x-extra": children})

    return st.recursive(leaf, nested, max_leaves=12).filter(lambda schema: isinstance(schema, dict))


def _checked_and_applied_or_refused(schema: dict) -> None:
    """The schema checker, then the answer fitted to the schema: a result or a 400, never anything else."""
    try:
        response_schema.check(schema)
        completions.fit(ANSWER, schema)
    except APIError as error:
        assert error.status == 400 and error.param == response_schema.PARAM and error.message


@given(schema=_schemas())
@FUZZ
@seed(SEED)
def test_any_schema_is_applied_or_refused_with_a_400(schema):
    _checked_and_applied_or_refused(schema)


@pytest.mark.parametrize("path", CRASHERS, ids=[path.stem for path in CRASHERS])
def test_every_kept_crasher_is_now_a_result_or_a_400(path):
    case = json.loads(path.read_text())
    assert case["crashed_with"]
    if "schema" in case:
        _checked_and_applied_or_refused(case["schema"])
    else:
        _fetched_or_refused(case["url"], case.get("location"))
