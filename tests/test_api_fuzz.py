"""schemathesis against the server's own OpenAPI document: generated requests, no 5xx, responses as documented.

Bounded: a few dozen examples per operation, so the run takes well under a minute.
"""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
import schemathesis
from api_server import group_url, running
from hypothesis import HealthCheck, given, settings
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

from faceqa.app.config import ServerConfig

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
