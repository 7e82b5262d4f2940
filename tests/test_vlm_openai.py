"""OpenAIBackend against a scripted stand-in server on loopback (unit tier: no vLLM).

The stand-in answers in the OpenAI chat-completions shape and can be told to fail,
stall or count requests in flight, which a real server cannot be made to do on cue.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import noise
from eval_standin import sent_image_files
from PIL import Image

from faceqa.crops import encode_jpeg
from faceqa.vlm.base import GenerationParams, VLMError, VLMRequest
from faceqa.vlm.openai_backend import OpenAIBackend, image_data_url


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.failures: list[tuple[int, dict]] = []  # (status, body) served before answering normally
        self.delay = 0.0
        # A request is in flight from its arrival until just before its response is written: once the
        # client has read a response, that request no longer counts, so the peak is the client's own.
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_until = 0  # hold the first requests until this many are in flight at once (0: never)
        self.lock = threading.Condition()

    def handle_error(self, request, client_address) -> None:
        """The timeout test hangs up on purpose; a write to its closed socket is expected."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "stand-in", "object": "model", "owned_by": "me"}]})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server.lock:
            server.requests.append(request)
            failure = server.failures.pop(0) if server.failures else None
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            server.lock.notify_all()
            # A deadlock guard only: a client that never has `hold_until` requests out is caught by the
            # test's assertion on max_in_flight, not by this wait (which then stops holding anyone).
            if not server.lock.wait_for(lambda: server.max_in_flight >= server.hold_until, timeout=60):
                server.hold_until = 0
                server.lock.notify_all()
        time.sleep(server.delay)
        status, body, headers = self._reply(request, failure)
        with server.lock:
            server.in_flight -= 1
        self._send(status, body, headers)

    @staticmethod
    def _reply(request: dict, failure: tuple[int, dict] | None) -> tuple[int, dict, dict | None]:
        if failure:
            return failure[0], failure[1], {"retry-after-ms": "10"}
        text = request["messages"][-1]["content"][-1]["text"]
        if text == "fail me":
            return 400, {"error": {"message": "this request is bad", "type": "BadRequestError"}}, None
        return 200, {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"echo: {text}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        }, None


@pytest.fixture
def stand_in():
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def decode_data_url(url: str) -> Image.Image:
    header, payload = url.split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def test_images_travel_as_data_urls_in_order(stand_in):
    backend = OpenAIBackend(stand_in.url, model="m")
    completion = backend.complete([noise(0), noise(1)], "Compare.", GenerationParams(max_tokens=7, seed=3))
    assert completion.text == "echo: Compare."
    assert (completion.prompt_tokens, completion.completion_tokens) == (11, 3)
    sent = stand_in.requests[0]
    assert sent["model"] == "m" and sent["max_tokens"] == 7 and sent["temperature"] == 0.0 and sent["seed"] == 3
    parts = sent["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    for part, seed in zip(parts[:2], (0, 1), strict=True):
        assert (np.asarray(decode_data_url(part["image_url"]["url"])) == noise(seed)).all()  # PNG is lossless


def test_a_jpeg_quality_sends_the_bytes_of_the_training_rows_encoder(stand_in):
    OpenAIBackend(stand_in.url, model="m", jpeg_quality=60).generate([noise(0), Image.fromarray(noise(1))], "Hi")
    assert sent_image_files(stand_in.requests[0]) == [("image/jpeg", encode_jpeg(noise(0), 60)),
                                                       ("image/jpeg", encode_jpeg(noise(1), 60))]


def test_without_a_jpeg_quality_images_go_as_lossless_png(stand_in):
    OpenAIBackend(stand_in.url, model="m").generate([noise(0)], "Hi")
    [(media_type, data)] = sent_image_files(stand_in.requests[0])
    assert media_type == "image/png" and (np.asarray(Image.open(io.BytesIO(data))) == noise(0)).all()


@pytest.mark.parametrize("quality", [-1, 101])
def test_a_jpeg_quality_outside_0_to_100_is_refused(quality):
    with pytest.raises(ValueError, match="jpeg_quality must be 0 to 100"):
        OpenAIBackend("http://127.0.0.1:9/v1", model="m", jpeg_quality=quality)


def test_model_defaults_to_the_servers_first_model(stand_in):
    OpenAIBackend(stand_in.url).generate([], "Hi")
    assert stand_in.requests[0]["model"] == "stand-in"


def test_structured_output_fields(stand_in):
    backend = OpenAIBackend(stand_in.url, model="m")
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}
    backend.generate([noise(0)], "JSON", GenerationParams(json_schema=schema))
    backend.generate([noise(0)], "choose", GenerationParams(choices=("happy", "sad")))
    json_request, choice_request = stand_in.requests
    assert json_request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert choice_request["structured_outputs"] == {"choice": ["happy", "sad"]}
    assert not any(key.startswith("guided_") for key in choice_request)  # removed from vLLM


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried(stand_in, status):
    stand_in.failures = [(status, {"error": {"message": "busy"}})] * 2
    assert OpenAIBackend(stand_in.url, model="m", max_retries=3).generate([], "Hi") == "echo: Hi"
    assert len(stand_in.requests) == 3


def test_retries_give_up_with_a_clear_error(stand_in):
    stand_in.failures = [(503, {"error": {"message": "overloaded"}})] * 5
    with pytest.raises(VLMError, match="answered 503"):
        OpenAIBackend(stand_in.url, model="m", max_retries=1).generate([], "Hi")
    assert len(stand_in.requests) == 2


def test_bad_request_is_not_retried(stand_in):
    with pytest.raises(VLMError, match="answered 400: .*this request is bad"):
        OpenAIBackend(stand_in.url, model="m").generate([], "fail me")
    assert len(stand_in.requests) == 1


def test_timeout(stand_in):
    stand_in.delay = 60.0  # were the timeout ignored, the answer would come (and the test fail) after a minute
    with pytest.raises(VLMError, match="no answer within 0.2 s") as raised:
        OpenAIBackend(stand_in.url, model="m", timeout=0.2, max_retries=0).generate([], "Hi")
    assert raised.value.retryable


def test_only_errors_that_may_pass_are_marked_retryable(stand_in):
    for status, retryable in ((400, False), (404, False), (413, False), (422, False),
                              (408, True), (429, True), (500, True), (503, True)):
        stand_in.failures = [(status, {"error": {"message": "no"}})]
        with pytest.raises(VLMError, match=f"answered {status}") as raised:
            OpenAIBackend(stand_in.url, model="m", max_retries=0).generate([], "Hi")
        assert raised.value.retryable is retryable, status


def test_unreachable_server():
    from faceqa.dev.ports import free_port

    with pytest.raises(VLMError, match="cannot reach"):
        OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=0).generate([], "Hi")


def test_batch_respects_the_concurrency_limit_and_keeps_order(stand_in):
    stand_in.hold_until = 3  # the first requests wait until three are out at once: no timing luck needed
    backend = OpenAIBackend(stand_in.url, model="m", concurrency=3)
    requests = [VLMRequest([noise(i)], f"q{i}") for i in range(10)]
    answers = backend.generate_batch(requests)
    assert answers == [f"echo: q{i}" for i in range(10)]
    assert stand_in.max_in_flight == 3


def test_a_bad_item_does_not_sink_the_batch(stand_in):
    backend = OpenAIBackend(stand_in.url, model="m")
    answers = backend.generate_batch(
        [
            VLMRequest([noise(0)], "q0"),
            VLMRequest([noise(0)], "fail me"),
            VLMRequest([np.zeros((2, 2), np.uint8)], "q2"),
            VLMRequest([noise(1)], "q3"),
        ]
    )
    assert answers[0] == "echo: q0" and answers[3] == "echo: q3"
    assert isinstance(answers[1], VLMError) and isinstance(answers[2], VLMError)
    assert "HxWx3" in str(answers[2])


def test_data_url_roundtrip_from_pil():
    pil = Image.fromarray(noise(5))
    assert (np.asarray(decode_data_url(image_data_url(pil))) == noise(5)).all()
