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
from http.server import ThreadingHTTPServer

import openai
import pytest
from api_server import EXAMPLES, data_url, running
from eval_standin import JSONHandler
from PIL import Image

from faceqa.app.config import ServerConfig

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
    server = ThreadingHTTPServer(("127.0.0.1", 0), _VLM)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


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
    assert "30-39" in local.choices[0].message.content  # the embedded engine's reading, cached separately


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
