"""faceqa-vlm: the assistant over a VLM backend, wired through `faceqa serve --vlm-base-url --vlm-model`.

The VLM here is a stand-in OpenAI-compatible server (fixed labels, with the logprobs
vLLM would send), so the test checks the wiring: the model is listed, per-face crops
go to the backend, its labels (race included, which the embedded engine lacks) reach
the answers and the face reports, analyses are cached per model, and a backend that
gives nothing usable becomes a clear 502 while faceqa-local keeps working. The real
backends against vLLM are tested in test_vlm_vllm.py.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest
from api_server import EXAMPLES, data_url, running, stand_in
from eval_standin import JSONHandler
from PIL import Image

from faceqa.app.config import ServerConfig
from faceqa.vlm.base import VLMBackend, VLMError, VLMRequest

ANSWERS = {"race": "Middle Eastern", "gender": "Female", "age group": "40-49", "emotion": "Surprise"}


class _VLM(JSONHandler):
    broken = False
    crops: list[tuple[int, int]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(200, {"object": "list", "data": [{"id": "tiny-vlm", "object": "model", "owned_by": "test"}]})

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.broken:
            self._send(400, {"error": {"message": "model crashed", "type": "invalid_request_error"}})
            return
        content = request["messages"][-1]["content"]
        question = next(p["text"] for p in content if p["type"] == "text")
        url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
        _VLM.crops.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size)
        answer = next(label for key, label in ANSWERS.items() if f"apparent {key}" in question or key in question)
        assert answer in request["structured_outputs"]["choice"]
        self._send(200, {
            "id": "c", "object": "chat.completion", "created": 0, "model": request["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer},
                         "logprobs": {"content": [{"token": answer, "logprob": -0.1, "bytes": None,
                                                   "top_logprobs": []}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}})



@pytest.fixture(scope="module")
def vlm_url():
    with stand_in(_VLM) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture(scope="module")
def client(vlm_url):
    with running(ServerConfig(vlm_base_url=vlm_url, vlm_model="tiny-vlm")) as url, \
            openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def ask(client: openai.OpenAI, model: str, question: str, photo: str = "group.jpg"):
    url = data_url((EXAMPLES / photo).read_bytes())
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}]}])


def test_both_models_are_listed(client):
    assert [m.id for m in client.models.list()] == ["faceqa-local", "faceqa-vlm"]


def test_vlm_labels_reach_the_answer(client):
    _VLM.crops.clear()
    reply = ask(client, "faceqa-vlm", "What race does the person on the far left appear to be?")
    assert "Middle Eastern" in reply.choices[0].message.content
    assert len(_VLM.crops) == 4 * 4  # every attribute of every face, each on its own crop
    assert all(w < 1200 and h < 380 for w, h in _VLM.crops)
    again = ask(client, "faceqa-vlm", "How old does the person on the far left look?")
    assert "40-49" in again.choices[0].message.content
    assert len(_VLM.crops) == 16  # the analysis came from the cache
    local = ask(client, "faceqa-local", "How old does the person on the far left look?")
    assert "50-59" in local.choices[0].message.content  # the embedded engine's reading, cached separately


def test_vlm_face_reports(client):
    response = client.post("/faces/analyze", cast_to=object, body={
        "model": "faceqa-vlm", "images": [data_url((EXAMPLES / "obama.jpg").read_bytes())]})
    [face] = response["data"][0]["faces"]
    assert face["race"]["label"] == "Middle Eastern" and face["gender"]["label"] == "Female"
    assert face["emotion"]["label"] == "Surprise" and face["race"]["score"] == pytest.approx(0.905, abs=1e-3)
    assert face["sources"]["race"].startswith("vlm:")


def test_a_failing_backend_is_a_clear_502(client):
    _VLM.broken = True
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            ask(client, "faceqa-vlm", "How old does she look?", "astronaut.png")
        assert caught.value.status_code == 502 and caught.value.code == "vlm_unavailable"
        assert "faceqa-local still works" in caught.value.message
        assert "Person 1" in ask(client, "faceqa-local", "How old does she look?", "astronaut.png").choices[
            0].message.content
    finally:
        _VLM.broken = False


def test_a_failing_backend_is_one_error_entry_of_a_batch(client):
    _VLM.broken = True
    try:
        response = client.post("/faces/analyze", cast_to=object, body={"model": "faceqa-vlm", "images": [
            data_url((EXAMPLES / "astronaut.png").read_bytes()), "data:image/png;base64,broken"]})
    finally:
        _VLM.broken = False
    failed, broken = response["data"]
    assert "VLM backend gave no usable answer" in failed["error"] and "base64" in broken["error"]


# --- a failing or slow VLM never starves faceqa-local -------------------------------------------------


class _StandIn:
    """A model worker per model: faceqa-vlm's answers wait for the test to release them; faceqa-local's
    engine waits too when `hold_local` is set. Counts what ran."""

    release = threading.Event()
    entered = threading.Event()
    hold_local = False
    vlm_answers = 0
    local_analyses = 0

    def __init__(self, config: ServerConfig, model: str):
        from faceqa.schema import ImageInfo, ImageReport

        self.model = model
        self.report = ImageReport(image=ImageInfo(width=1, height=1), faces=[])
        self.engine = self
        self.assistant = self
        self.attributes = None

    @classmethod
    def reset(cls) -> None:
        cls.release.clear()
        cls.entered.clear()
        cls.hold_local = False
        cls.vlm_answers = cls.local_analyses = 0

    def analyze(self, rgb, embeddings=False):
        if self.model == "faceqa-local":
            _StandIn.local_analyses += 1
            if _StandIn.hold_local:
                _StandIn.entered.set()
                assert _StandIn.release.wait(30)
        return self.report

    def plan(self, question, reports, conversation=None, pixels=None):
        from faceqa.assistant import Plan

        return Plan(intent="count")

    def answer(self, images, question, conversation=None, plan=None, pixels=None):
        from faceqa.schema import Answer

        if self.model == "faceqa-vlm":
            _StandIn.vlm_answers += 1
            _StandIn.entered.set()
            assert _StandIn.release.wait(30)
        return Answer(answer=f"{self.model} answered", task="count")


def _photo(size: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (size % 256, 90, 60)).save(buffer, format="PNG")
    return data_url(buffer.getvalue(), "image/png")


def _stand_in_server(timeout: float):
    from faceqa.app.metrics import Metrics
    from faceqa.app.service import Service

    _StandIn.reset()
    config = ServerConfig(vlm_base_url="http://127.0.0.1:9/v1", vlm_model="m", workers=1, request_timeout=timeout)
    return running(config, service=Service(config, Metrics(), worker=_StandIn))


def _chat(url: str, model: str, size: int = 32) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=60, json={"model": model, "messages": [{
        "role": "user", "content": [{"type": "text", "text": "how many?"},
                                    {"type": "image_url", "image_url": {"url": _photo(size)}}]}]})


def test_local_requests_never_wait_behind_vlm_ones():
    with _stand_in_server(timeout=60) as url, ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(_chat, url, "faceqa-vlm")
        assert _StandIn.entered.wait(30)  # the VLM request holds faceqa-vlm's only worker
        local = _chat(url, "faceqa-local")
        assert local.status_code == 200 and local.json()["choices"][0]["message"]["content"] == \
            "faceqa-local answered"
        _StandIn.release.set()
        assert stuck.result().status_code == 200


def test_work_for_a_timed_out_request_that_is_still_queued_never_runs():
    with _stand_in_server(timeout=3) as url, ThreadPoolExecutor(1) as pool:
        first = pool.submit(_chat, url, "faceqa-vlm", 32)
        assert _StandIn.entered.wait(30)
        assert _chat(url, "faceqa-vlm", 33).status_code == 408  # queued behind the first, then abandoned
        assert first.result().status_code == 408
        _StandIn.release.set()
        # One worker takes jobs in order: once a later request is answered, the abandoned one had its turn.
        assert _chat(url, "faceqa-vlm", 34).status_code == 200
    assert _StandIn.vlm_answers == 2  # the first and the last; the abandoned one was cancelled


def test_a_timed_out_analysis_stops_at_its_next_photo():
    with _stand_in_server(timeout=3) as url:
        _StandIn.hold_local = True
        response = httpx.post(f"{url}/v1/faces/analyze", timeout=60,
                              json={"images": [_photo(40), _photo(41), _photo(42)]})
        assert response.status_code == 408 and _StandIn.entered.is_set()
        _StandIn.hold_local = False
        _StandIn.release.set()
        assert httpx.post(f"{url}/v1/faces/analyze", timeout=60, json={"images": [_photo(43)]}).status_code == 200
    assert _StandIn.local_analyses == 2  # the first photo of the abandoned request, then the last request's


class _FailingBackend(VLMBackend):
    name = "failing"

    def __init__(self, retryable: bool = True) -> None:
        self.batches: list[int] = []
        self.client = None
        self.retryable = retryable

    def complete(self, images, prompt, params=None):
        raise VLMError("down", self.retryable)

    def complete_batch(self, requests, params=None):
        self.batches.append(len(requests))
        return [VLMError("down", self.retryable)] * len(requests)


class _Client:
    def __init__(self) -> None:
        self.options: list[dict] = []

    def with_options(self, **options):
        self.options.append(options)
        return self


def test_vlm_calls_and_their_retries_only_get_the_time_the_request_has_left():
    from faceqa.app.service import VLM_ATTEMPTS, Budget, DeadlineBackend

    requests = [VLMRequest([np.zeros((4, 4, 3), np.uint8)], "q")] * 3
    inner, client = _FailingBackend(), _Client()
    budget = Budget(time.monotonic() + 30)
    results = DeadlineBackend(inner, client, lambda: budget).complete_batch(requests)
    assert all(isinstance(r, VLMError) for r in results) and inner.batches == [3] * VLM_ATTEMPTS
    assert all(o["max_retries"] == 0 and 0 < o["timeout"] <= 30 for o in client.options)

    for spent in (Budget(time.monotonic() - 1), budget):
        spent.cancel()
        inner = _FailingBackend()
        results = DeadlineBackend(inner, _Client(), lambda b=spent: b).complete_batch(requests)
        assert inner.batches == [] and all("timed out or was abandoned" in str(r) for r in results)


def test_a_request_the_vlm_refused_is_not_sent_again():
    from faceqa.app.service import Budget, DeadlineBackend

    requests = [VLMRequest([np.zeros((4, 4, 3), np.uint8)], "q")] * 2
    inner, budget = _FailingBackend(retryable=False), Budget(time.monotonic() + 30)
    results = DeadlineBackend(inner, _Client(), lambda: budget).complete_batch(requests)
    assert all(isinstance(r, VLMError) for r in results) and inner.batches == [2]
