"""The API's security and input policy, case by case, against real servers on loopback.

Every refusal must be a 4xx carrying OpenAI's error object, and the server must keep
serving afterwards. Remote images come from a throwaway HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from api_server import EXAMPLES, ask, data_url, group_url, running, stand_in
from PIL import Image
from typer.testing import CliRunner

from faceqa.app import policy
from faceqa.app.cli import serve
from faceqa.app.config import ServerConfig

GROUP = (EXAMPLES / "group.jpg").read_bytes()
KEYS = ("key-one", "key-two")
AUTH = {"Authorization": "Bearer key-one"}


def big_jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buffer, format="JPEG")
    return buffer.getvalue()


class _Images(BaseHTTPRequestHandler):
    """Serves the example photo, and the ways a remote image can go wrong."""

    protocol_version = "HTTP/1.0"
    redirect_away = ""  # set to a URL on a host that is not allowed
    redirect_other_port = ""  # the same host, another port (where something else listens)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        routes = {
            "/group.jpg": lambda: self._send(GROUP),
            "/big": lambda: self._send(b"\xff" * 300_000),
            "/big-unsized": lambda: self._send(b"\xff" * 300_000, sized=False),
            "/slow": self._slow,
            "/to-group": lambda: self._redirect("/group.jpg"),
            "/to-away": lambda: self._redirect(self.redirect_away),
            "/to-file": lambda: self._redirect("file:///etc/passwd"),
            "/to-data": lambda: self._redirect("data:image/png;base64,AAAA"),
            "/to-bad-port": lambda: self._redirect("http://127.0.0.1:abc/group.jpg"),
            "/to-other-port": lambda: self._redirect(self.redirect_other_port),
            "/loop": lambda: self._redirect("/loop"),
            "/error": lambda: self.send_error(500),
        }
        routes.get(self.path, lambda: self.send_error(404))()

    def _send(self, body: bytes, sized: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        if sized:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _slow(self) -> None:
        time.sleep(2.5)
        self._send(GROUP)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class _OtherService(BaseHTTPRequestHandler):
    """Something else on the allowed host: a port scan through redirects would find it."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        _OtherService.hits.append(self.path)
        self.send_error(418)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def other_port_server():
    with stand_in(_OtherService) as server:
        yield server


@pytest.fixture(scope="module")
def images_url(other_port_server):
    with stand_in(_Images) as server:
        port = server.server_address[1]
        _Images.redirect_away = f"http://localhost:{port}/group.jpg"
        _Images.redirect_other_port = f"http://127.0.0.1:{other_port_server.server_address[1]}/group.jpg"
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def guarded(images_url):
    """Keys on, the image server's origin allowed for image URLs, small limits."""
    config = ServerConfig(api_keys=KEYS, allow_remote_origins=(images_url,), remote_max_bytes=200_000,
                          remote_timeout=1.0, max_body_bytes=600_000, max_images=2, max_pixels=2_000_000,
                          max_messages=6, max_question_chars=200, request_timeout=20)
    with running(config) as url, httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def default(images_url):
    """Out-of-the-box settings, except a short request timeout (and a remote host to run into it)."""
    config = ServerConfig(allow_remote_origins=(images_url,), remote_timeout=10, request_timeout=0.5)
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def refused(response: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def chat(client: httpx.Client, body: dict | str, **kwargs) -> httpx.Response:
    if isinstance(body, str):
        return client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"},
                           **kwargs)
    return client.post("/v1/chat/completions", json=body, **kwargs)


# --- API keys ------------------------------------------------------------------------------------------


def anonymous(client: httpx.Client, headers: dict | None = None) -> httpx.Client:
    return httpx.Client(base_url=client.base_url, headers=headers, timeout=30)


def test_health_is_open_and_everything_else_needs_a_key(guarded):
    with anonymous(guarded) as client:
        assert client.get("/health").status_code == 200
        for path in ("/v1/models", "/metrics"):
            error = refused(client.get(path), 401, "missing_api_key")
            assert "Bearer" in error["message"]
        refused(client.post("/v1/chat/completions", json=ask("hi", group_url())), 401)
        refused(client.post("/v1/faces/analyze", json={"images": [group_url()]}), 401)


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer key-one-and-more", "Basic key-one", "key-one",
                                    "bearer KEY-ONE"])
def test_wrong_keys_are_refused(guarded, header):
    with anonymous(guarded, {"Authorization": header}) as client:
        response = client.get("/v1/models")
    refused(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_every_configured_key_works(guarded):
    for key in KEYS:
        with anonymous(guarded, {"Authorization": f"Bearer {key}"}) as client:
            assert client.get("/v1/models").status_code == 200


@pytest.mark.parametrize(("token", "valid"), [("key-one", True), ("key-two", True), ("key-six", False),
                                              ("k", False), ("key-one-and-more", False)])
def test_every_key_is_compared_by_compare_digest_whichever_matches(monkeypatch, token, valid):
    # What the check does (not how long it takes, which no test may assert): the same comparisons, of the same keys
    # in the same order, whether the first key matches, the last, or none; each by hmac.compare_digest, whose time
    # does not depend on where two equal-length byte strings differ. An early exit or an `==` fails here.
    compared = []
    real = policy.hmac.compare_digest

    def recording(given, key):
        compared.append((given, key))
        return real(given, key)

    monkeypatch.setattr(policy.hmac, "compare_digest", recording)
    if valid:
        policy.check_api_key(f"Bearer {token}", KEYS)
    else:
        with pytest.raises(policy.APIError, match="invalid API key"):
            policy.check_api_key(f"Bearer {token}", KEYS)
    assert compared == [(token.encode(), key.encode()) for key in KEYS]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_listening_beyond_loopback_needs_a_key(host):
    with pytest.raises(ValueError, match="API key"):
        ServerConfig(host=host).check()
    ServerConfig(host=host, api_keys=("k",)).check()
    result = CliRunner().invoke(_cli(), ["--host", host], env={"FACEQA_API_KEY": ""})
    assert result.exit_code == 2 and "API key" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_key(host):
    ServerConfig(host=host).check()


def test_serve_options_reach_the_server(monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    result = CliRunner().invoke(_cli(), [
        "--host", "0.0.0.0", "--port", "9123", "--allow-remote-origin", "https://images.example.org",
        "--max-images", "3", "--max-pixels", "1000000", "--timeout", "7", "--workers", "2", "--cache-size", "0"],
        env={"FACEQA_API_KEY": "from-env"})
    assert result.exit_code == 0, result.output
    config = started["app"].state.config
    assert (started["host"], started["port"]) == ("0.0.0.0", 9123)
    assert config.api_keys == ("from-env",) and config.allow_remote_origins == ("https://images.example.org",)
    assert (config.max_images, config.max_pixels, config.request_timeout) == (3, 1_000_000, 7.0)
    assert (config.workers, config.cache_size, config.models) == (2, 0, ("faceqa-local",))


def _cli():
    import typer

    app = typer.Typer()
    app.command()(serve)
    return app


# --- image URLs ----------------------------------------------------------------------------------------


def test_remote_urls_are_refused_by_default():
    fetcher = policy.ImageFetcher(ServerConfig())
    import asyncio

    with pytest.raises(policy.APIError) as caught:
        asyncio.run(fetcher.fetch("https://example.com/face.jpg", "p"))
    assert caught.value.status == 400 and caught.value.code == "image_url_forbidden"
    assert "data: URL" in caught.value.message


def test_an_allowed_host_is_fetched(guarded, images_url):
    response = guarded.post("/v1/faces/analyze", json={"images": [f"{images_url}/group.jpg",
                                                                  f"{images_url}/to-group"]})
    assert response.status_code == 200, response.text
    assert [len(item["faces"]) for item in response.json()["data"]] == [4, 4]


@pytest.mark.parametrize(("path", "code", "words"), [
    ("/big", "image_too_large", "larger than 200,000 bytes"),
    ("/big-unsized", "image_too_large", "larger than 200,000 bytes"),
    ("/slow", "image_url_timeout", "took over 1 s"),
    ("/to-away", "image_url_forbidden", "redirect to http://localhost:"),
    ("/to-file", "image_url_forbidden", "non-http(s)"),
    ("/loop", "image_url_unreachable", "redirected more than 3 times"),
    ("/missing", "image_url_unreachable", "could not be fetched"),
    ("/to-data", "image_url_unreachable", "could not be fetched"),
    ("/to-bad-port", "image_url_unreachable", "could not be fetched"),
])
def test_remote_images_within_limits_only(guarded, images_url, path, code, words):
    error = refused(chat(guarded, ask("how old?", f"{images_url}{path}")), 400, code,
                    "messages[0].content[1].image_url")
    assert words in error["message"]


def test_hosts_off_the_allow_list_are_refused(guarded, images_url):
    port = images_url.rsplit(":", 1)[1]
    error = refused(chat(guarded, ask("how old?", f"http://localhost:{port}/group.jpg")), 400,
                    "image_url_forbidden")
    assert f"http://localhost:{port} is not on this server's allow-list" in error["message"]


def test_allow_list_entries_are_origins_and_every_hop_is_checked_against_them(guarded, images_url):
    _OtherService.hits.clear()
    error = refused(chat(guarded, ask("how old?", f"{images_url}/to-other-port")), 400, "image_url_forbidden")
    assert "redirect to http://127.0.0.1:" in error["message"] and "allow-list" in error["message"]
    other = _Images.redirect_other_port
    refused(chat(guarded, ask("how old?", other)), 400, "image_url_forbidden")
    https = images_url.replace("http://", "https://")
    refused(chat(guarded, ask("how old?", f"{https}/group.jpg")), 400, "image_url_forbidden")
    assert _OtherService.hits == []


@pytest.mark.parametrize("entry", ["images.example.org", "127.0.0.1:8080", "ftp://images.example.org",
                                   "https://images.example.org/faces/", "https://user@images.example.org",
                                   "http://[::1", "http://images.example.org:99999"])
def test_allow_list_entries_must_be_plain_origins(entry):
    with pytest.raises(ValueError):
        ServerConfig(allow_remote_origins=(entry,)).check()


def test_upstream_failures_all_look_the_same(guarded, images_url, other_port_server):
    """No port-scanning oracle: a 404, a 500 and a closed port give one identical answer."""
    closed = _closed_port()
    config = ServerConfig(api_keys=KEYS, allow_remote_origins=(images_url, f"http://127.0.0.1:{closed}"))
    with running(config) as url, httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        answers = {refused(chat(client, ask("how old?", target)), 400, "image_url_unreachable")["message"]
                   for target in (f"{images_url}/missing", f"{images_url}/error", f"http://127.0.0.1:{closed}/x")}
    assert answers == {"the image URL could not be fetched"}


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("url", ["http://[::1/x", "http://127.0.0.1:abc/x", "http://127.0.0.1/\x00", "http://",
                                 "http://127.0.0.1/" + "a" * policy.MAX_URL_CHARS], ids=lambda url: url[:24])
def test_malformed_image_urls_are_a_400(guarded, url):
    refused(chat(guarded, ask("how old?", url)), 400, param="messages[0].content[1].image_url")
    response = guarded.post("/v1/faces/analyze", json={"images": [url]})
    assert response.status_code == 200 and "error" in response.json()["data"][0]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", str(EXAMPLES / "group.jpg"),
                                 "faceqa/examples/group.jpg", "ftp://127.0.0.1/group.jpg", "C:\\faces\\a.jpg"])
def test_files_and_other_schemes_are_refused(guarded, url):
    refused(chat(guarded, ask("how old?", url)), 400, param="messages[0].content[1].image_url")


# --- limits --------------------------------------------------------------------------------------------


def test_body_size_limit(guarded):
    body = json.dumps(ask("how old?", data_url(GROUP), data_url(GROUP), data_url(GROUP), data_url(GROUP)))
    assert len(body) > 600_000
    refused(chat(guarded, body), 413, "request_too_large")

    def chunks():  # no Content-Length: the cap must hold while reading
        for start in range(0, len(body), 65_536):
            yield body[start:start + 65_536].encode()

    refused(guarded.post("/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}),
            413, "request_too_large")


def test_a_body_of_many_small_values_is_refused_before_it_is_parsed(guarded):
    body = json.dumps({"model": "faceqa-local", "messages": [[]] * 30_000})
    assert len(body) < 600_000
    error = refused(chat(guarded, body), 400, "request_too_complex")
    assert "50,000 JSON values" in error["message"]


def test_the_text_of_all_messages_is_bounded(guarded):
    config = ServerConfig(max_text_chars=10_000)
    long_system = {"role": "system", "content": "be brief. " * 2_000}
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = ask("how old?", group_url())
        body["messages"].insert(0, long_system)
        refused(chat(client, body), 400, "text_too_long", "messages")


def test_images_per_request_limit(guarded):
    small = data_url(big_jpeg(64, 64))
    refused(chat(guarded, ask("how old?", small, small, small)), 400, "too_many_images")
    turns = {"model": "faceqa-local", "messages": [
        ask("how old?", small, small)["messages"][0], {"role": "assistant", "content": "..."},
        ask("and now?", small)["messages"][0]]}
    refused(chat(guarded, turns), 400, "too_many_images", "messages[2].content")
    refused(guarded.post("/v1/faces/analyze", json={"images": [small] * 3}), 400, "too_many_images", "images")


def test_pixels_per_image_limit(guarded):
    error = refused(chat(guarded, ask("how old?", data_url(big_jpeg(2000, 1200)))), 400, "image_too_large",
                    "messages[0].content[1].image_url")
    assert "2000x1200" in error["message"]


def test_messages_per_request_limit(guarded):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 3
    messages.append({"role": "user", "content": "how old?"})
    refused(chat(guarded, {"model": "faceqa-local", "messages": messages}), 400, "too_many_messages")


def test_question_length_limit(guarded):
    refused(chat(guarded, ask("how old? " * 30, group_url())), 400, "question_too_long")


def test_per_request_timeout(default, images_url):
    # The image takes 2.5 s to arrive and the fetch may take 10 s: only the request's own 0.5 s limit gives a 408.
    refused(chat(default, ask("how old?", f"{images_url}/slow")), 408, "request_timeout")
    assert default.get("/health").status_code == 200


# --- names: Host header, bind address, HEAD ------------------------------------------------------------


def test_requests_naming_another_host_are_refused_on_loopback(default):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 still sends Host: evil.example."""
    port = str(default.base_url.port)
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", ""):
        refused(default.get("/v1/models", headers={"Host": host}), 400, "invalid_host")
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert default.get("/v1/models", headers={"Host": host}).status_code == 200, host


def test_allowed_host_names_are_configurable():
    assert ServerConfig(host="0.0.0.0", api_keys=("k",)).host_names is None  # keys guard it; any name
    assert ServerConfig(allowed_hosts=("*",)).host_names is None
    assert ServerConfig(allowed_hosts=("faces.internal",)).host_names == {"faces.internal"}
    with running(ServerConfig(allowed_hosts=("faces.internal",))) as url:
        assert httpx.get(f"{url}/health", headers={"Host": "faces.internal:80"}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 400


def test_head_health_answers(default):
    response = default.head("/health")
    assert response.status_code == 200 and response.content == b""


def test_an_ipv6_loopback_in_brackets_is_bound_without_them(monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    result = CliRunner().invoke(_cli(), ["--host", "[::1]", "--port", "9124"], env={"FACEQA_API_KEY": ""})
    assert result.exit_code == 0, result.output
    assert started["host"] == "::1"
    assert started["app"].state.config.host_names >= {"::1", "localhost"}


def test_the_openapi_document_states_the_limits(guarded):
    schemas = guarded.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["AnalyzeRequest"]["properties"]["images"]["maxItems"] == 2
    assert schemas["ChatCompletionRequest"]["properties"]["messages"]["maxItems"] == 6
    assert "2 images" in schemas["ChatCompletionRequest"]["properties"]["messages"]["description"]


# --- bad requests never get a 500 ----------------------------------------------------------------------


BAD = [
    ("{not json", 400, "invalid_json", None),
    ("[1, 2]", 400, "invalid_value", None),
    ('{"model": "faceqa-local"}', 400, "invalid_value", "messages"),
    ('{"model": "faceqa-local", "messages": []}', 400, "invalid_value", "messages"),
    ('{"model": 7, "messages": [{"role": "user", "content": "hi"}]}', 400, "invalid_value", "model"),
    ('{"model": "faceqa-local", "n": "2", "messages": [{"role": "user", "content": "hi"}]}', 400, None, "n"),
    ('{"model": "faceqa-local", "n": 99, "messages": [{"role": "user", "content": "hi"}]}', 400, None, "n"),
    ('{"model": "faceqa-local", "messages": [{"role": "robot", "content": "hi"}]}', 400, None, None),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": [{"type": "audio"}]}]}', 400, None, None),
    ('{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}', 404, "model_not_found", "model"),
    ('{"model": "faceqa-vlm", "messages": [{"role": "user", "content": "hi"}]}', 400, "model_not_configured",
     "model"),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", '
     '"content": "hello"}]}', 400, None, "messages[1]"),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": "hi"}], "response_format": '
     '{"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 12}}}}', 400, "invalid_schema", None),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": "hi"}], "response_format": '
     '{"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "required": ["mood"]}}}}',
     400, "response_format_unsatisfiable", None),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": "hi"}], "response_format": '
     '{"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"answer": {"pattern": '
     '"(a+)+$"}}}}}}', 400, "invalid_schema", "response_format.json_schema.schema"),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": "hi"}]}', 400, "no_image", "messages"),
]


@pytest.mark.parametrize(("body", "param"), [
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}',
     "messages[0].content[0].text"),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": '
     '{"url": 5}}]}]}', "messages[0].content[0].image_url.url"),
    ('{"model": "faceqa-local", "messages": [{"role": "user", "content": "hi"}], "stop": 5}', "stop"),
])
def test_param_names_where_the_bad_value_is(guarded, body, param):
    refused(chat(guarded, body), 400, "invalid_value", param)


@pytest.mark.parametrize(("body", "status", "code", "param"), BAD)
def test_malformed_requests(guarded, body, status, code, param):
    refused(chat(guarded, body), status, code, param)


@pytest.mark.parametrize(("url", "code", "words"), [
    (data_url(b"hello, not an image", "image/png"), "invalid_image", "not an image"),
    (data_url(GROUP[: len(GROUP) // 2]), "invalid_image", "truncated"),
    (data_url(b""), "invalid_image", "no image data"),
    (data_url(GROUP, "text/plain"), "invalid_image", "not an image"),
    ("data:image/jpeg;base64,@@@not-base64@@@", "invalid_image", "not valid base64"),
    ("data:image/jpeg," + "x" * 20, "invalid_image", "base64-encoded"),
    ("data:nonsense", "invalid_image", "malformed"),
])
def test_bad_images(guarded, url, code, words):
    error = refused(chat(guarded, ask("how old?", url)), 400, code, "messages[0].content[1].image_url")
    assert words in error["message"]


@pytest.mark.parametrize(("width", "height"), [(1, 3000), (40, 40), (100, 1400)])
def test_tiny_and_strip_images_are_answered_as_photos_without_faces(guarded, width, height):
    response = chat(guarded, ask("how old?", data_url(big_jpeg(width, height))))
    assert response.status_code == 200, response.text
    assert response.json()["faceqa"]["status"] == "no_faces"


def test_a_decoder_crash_is_that_photos_400_and_one_entry_of_a_batch(guarded, monkeypatch):
    """Whatever a decoder raises on hostile bytes (Pillow's AVIF plugin raised RuntimeError) stays per image."""
    from faceqa.app import service

    real = service.load_image

    def load(data, **options):
        if data == b"crafted bytes":
            raise RuntimeError("decoder bug")
        return real(data, **options)

    monkeypatch.setattr(service, "load_image", load)
    crafted = data_url(b"crafted bytes", "image/avif")
    refused(chat(guarded, ask("how old?", crafted)), 400, "invalid_image", "messages[0].content[1].image_url")
    response = guarded.post("/v1/faces/analyze", json={"images": [crafted, group_url()]})
    assert response.status_code == 200, response.text
    broken, good = response.json()["data"]
    assert "could not be decoded" in broken["error"] and len(good["faces"]) == 4


def test_an_engine_failure_on_one_photo_is_that_photos_entry(guarded, monkeypatch):
    from faceqa.faces.engine import FaceEngine

    real = FaceEngine.analyze

    def analyze(self, rgb, **options):
        if rgb.shape[:2] == (61, 67):
            raise RuntimeError("engine bug")
        return real(self, rgb, **options)

    monkeypatch.setattr(FaceEngine, "analyze", analyze)
    response = guarded.post("/v1/faces/analyze", json={"images": [data_url(big_jpeg(67, 61)), group_url()]})
    assert response.status_code == 200, response.text
    failed, good = response.json()["data"]
    assert "could not be analysed" in failed["error"] and len(good["faces"]) == 4


IMAGE_CRASHERS = sorted((Path(__file__).parent / "data" / "crashers").iterdir())


@pytest.mark.parametrize("path", IMAGE_CRASHERS, ids=[path.name for path in IMAGE_CRASHERS])
def test_images_that_crashed_a_decoder_are_a_400_and_one_entry_of_a_batch(guarded, path):
    crasher = data_url(path.read_bytes(), "image/avif")
    refused(chat(guarded, ask("how old?", crasher)), 400, "invalid_image", "messages[0].content[1].image_url")
    response = guarded.post("/v1/faces/analyze", json={"images": [crasher, group_url()]})
    assert response.status_code == 200, response.text
    broken, good = response.json()["data"]
    assert broken["error"] and len(good["faces"]) == 4


def test_a_photo_over_the_pixel_limit_is_named_so_in_a_batch(guarded):
    response = guarded.post("/v1/faces/analyze", json={"images": [data_url(big_jpeg(2000, 1200)), group_url()]})
    assert response.status_code == 200, response.text
    too_large, good = response.json()["data"]
    assert "2000x1200" in too_large["error"] and len(good["faces"]) == 4


def test_the_error_code_comes_from_the_kind_of_image_error_not_its_wording(guarded, monkeypatch):
    from faceqa.app import service
    from faceqa.images import BadImage

    def load(data, **options):
        raise BadImage("image data: reworded, no mention of size", "too_large")

    monkeypatch.setattr(service, "load_image", load)
    refused(chat(guarded, ask("how old?", data_url(b"any bytes"))), 400, "image_too_large")


def test_images_only_in_user_messages(guarded):
    body = {"model": "faceqa-local", "messages": [
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": group_url()}}]},
        {"role": "user", "content": "how old?"}]}
    refused(chat(guarded, body), 400, "invalid_value", "messages[0].content")


def test_the_server_keeps_serving_after_bad_requests(guarded):
    for body, *_ in BAD:
        chat(guarded, body)
    response = chat(guarded, ask("How many people are in the photo?", group_url()))
    assert response.status_code == 200
    assert response.json()["faceqa"]["faces"] == [1, 2, 3, 4] or "4" in response.json()["choices"][0]["message"][
        "content"]
    metrics = guarded.get("/metrics").text
    assert 'faceqa_http_errors_total{code="invalid_json",route="/v1/chat/completions"}' in metrics


# --- privacy -------------------------------------------------------------------------------------------


def test_images_stay_out_of_logs_errors_and_disk(guarded, caplog):
    written = []
    watching = threading.Event()

    def audit(event, args):
        if watching.is_set() and event == "open" and isinstance(args[1], str) and set(args[1]) & set("wax+"):
            written.append(args[0])

    sys.addaudithook(audit)
    encoded = group_url()
    payload = encoded.split(",", 1)[1]
    caplog.set_level(logging.DEBUG)
    watching.set()
    try:
        ok = chat(guarded, ask("How old is the person on the left?", encoded), headers={"X-Request-ID": "req-42"})
        bad = chat(guarded, ask("How old?", data_url(GROUP[:5000])))
        typed = chat(guarded, {"model": "faceqa-local", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": [payload[:2000]]}}]}]})
    finally:
        watching.clear()
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "req-42"
    assert bad.status_code == 400 and typed.status_code == 400
    assert payload[:2000] not in typed.text
    assert written == []
    logged = caplog.text
    assert "req-42" in logged
    for chunk in (payload[:64], payload[5000:5064], payload[-64:]):
        assert chunk not in logged


# --- bounded concurrency -------------------------------------------------------------------------------


class _StuckWorker:
    """A model worker whose answers wait for the test to release them (stands in for slow model work)."""

    release = threading.Event()

    def __init__(self, config: ServerConfig, model: str):
        from faceqa.schema import ImageInfo, ImageReport

        report = ImageReport(image=ImageInfo(width=1, height=1), faces=[])
        self.engine = type("Engine", (), {"analyze": lambda _, rgb, embeddings=False: report})()
        self.attributes = None
        self.assistant = self

    def plan(self, question, reports, conversation=None):
        from faceqa.assistant import Plan

        return Plan(intent="count")

    def answer(self, images, question, conversation=None, plan=None):
        from faceqa.schema import Answer

        assert self.release.wait(30)
        return Answer(answer="released", task="count")


def test_a_full_queue_gets_429_and_health_still_answers():
    from concurrent.futures import ThreadPoolExecutor

    from faceqa.app.metrics import Metrics
    from faceqa.app.service import Service

    config = ServerConfig(workers=1, max_pending=2)
    service = Service(config, Metrics(), worker=_StuckWorker)
    body = ask("how old?", data_url(big_jpeg(64, 64)))
    with running(config, service=service) as url, httpx.Client(base_url=url, timeout=30) as client, \
            ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(client.post, "/v1/chat/completions", json=body) for _ in range(2)]
        deadline = time.monotonic() + 10
        while service.pending < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = client.post("/v1/chat/completions", json=body)
        refused(busy, 429, "server_busy")
        assert busy.headers["retry-after"] == "1"
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["pending"] == 2
        _StuckWorker.release.set()
        assert [f.result().json()["choices"][0]["message"]["content"] for f in waiting] == ["released"] * 2
