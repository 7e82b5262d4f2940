"""`faceqa app` as an operator starts it: loopback unless opted in with a password, the password gate,
the Host-header check, and no outbound calls from Streamlit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from streamlit.testing.v1 import AppTest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from faceqa.dev.ports import free_port


def faceqa_app(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "faceqa", "app", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize("args", [["--host", "0.0.0.0"], ["--host", "0.0.0.0", "--password", "pw"],
                                  ["--host", "192.0.2.7", "--expose"], ["--host", "::", "--expose"]])
def test_listening_off_loopback_needs_an_explicit_opt_in_and_a_password(args):
    result = faceqa_app(*args, env={"FACEQA_APP_PASSWORD": ""})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not loopback) needs --expose and a password" in result.stderr
    assert "faceqa chat page" not in result.stdout  # Streamlit was never started


def test_serve_and_app_share_one_exposure_rule():
    from faceqa.app.config import ServerConfig, require_protection

    with pytest.raises(ValueError, match="needs an API key"):
        ServerConfig(host="0.0.0.0").check()
    ServerConfig(host="0.0.0.0", api_keys=("k",)).check()
    with pytest.raises(ValueError, match="needs it"):
        require_protection("0.0.0.0", ("pw",), "it", opted_in=False)
    with pytest.raises(ValueError, match="must not be empty"):
        require_protection("127.0.0.1", (" ",), "it")
    require_protection("0.0.0.0", ("pw",), "it", opted_in=True)
    require_protection("::1", (), "it", opted_in=False)


class _Recorder(BaseHTTPRequestHandler):
    """A stand-in HTTP(S) proxy that answers nothing and remembers every request sent through it."""

    seen: list[str] = []

    def _record(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(502)
        self.end_headers()

    do_GET = do_POST = do_CONNECT = do_HEAD = _record

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def running_app():
    """`faceqa app` on a free loopback port, every outbound request of it routed to a recording proxy."""
    _Recorder.seen = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    port = free_port()
    env = {**os.environ, "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "http_proxy": proxy_url,
           "https_proxy": proxy_url, "FACEQA_APP_PASSWORD": ""}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    process = subprocess.Popen([sys.executable, "-m", "faceqa", "app", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120  # waiting for start-up, not asserting on time
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the chat page did not start"
            time.sleep(0.2)
        yield port, _Recorder.seen
    finally:
        process.terminate()
        process.wait(timeout=30)
        proxy.shutdown()


def _websocket(port: int, host: str, origin: str | None) -> None:
    """Open the page's WebSocket on the loopback port, with the Host header a browser would send for `host`."""
    sock = socket.create_connection(("127.0.0.1", port))
    with connect(f"ws://{host}/_stcore/stream", sock=sock, origin=origin, subprotocols=["streamlit"],
                 open_timeout=30, proxy=None):
        pass


def test_the_page_socket_accepts_its_own_origin(running_app):
    port, _ = running_app
    _websocket(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    _websocket(port, f"localhost:{port}", f"http://localhost:{port}")


def test_a_rebound_host_name_is_refused(running_app):
    # DNS rebinding: evil.example resolves to 127.0.0.1, the victim's browser sends Host: evil.example.
    port, _ = running_app
    with pytest.raises(InvalidStatus):
        _websocket(port, f"evil.example:{port}", f"http://evil.example:{port}")


def test_a_foreign_origin_is_refused_without_any_outbound_lookup(running_app):
    port, seen = running_app
    with pytest.raises(InvalidStatus):  # Streamlit looked up its public IP to judge this origin
        _websocket(port, f"127.0.0.1:{port}", "http://evil.example")
    assert seen == []


def _gated_page() -> None:
    import streamlit as st

    from faceqa.app.gate import require_password

    require_password()
    st.markdown("the page itself")


def _inside(app: AppTest) -> bool:
    return any(m.value == "the page itself" for m in app.markdown)


def test_the_password_gate_shows_nothing_until_the_password_is_typed(monkeypatch):
    from faceqa.app import gate

    monkeypatch.setattr(gate, "WRONG", gate.WrongPasswords())  # no other test's wrong guesses count here
    monkeypatch.setenv("FACEQA_APP_PASSWORD", "correct horse")
    app = AppTest.from_function(_gated_page).run()
    assert not _inside(app) and len(app.text_input) == 1
    app.text_input[0].input("wrong")
    app.button[0].click().run()
    assert not _inside(app) and "Wrong password." in [e.value for e in app.error]
    app.text_input[0].input("correct horse")
    app.button[0].click().run()
    assert _inside(app) and not app.text_input
    app.run()  # a session that got in stays in
    assert _inside(app)


def test_after_five_wrong_passwords_in_any_sessions_none_is_checked_for_a_minute(monkeypatch):
    from faceqa.app import gate

    now = [1000.0]
    monkeypatch.setattr(gate, "WRONG", gate.WrongPasswords(clock=lambda: now[0]))
    monkeypatch.setenv("FACEQA_APP_PASSWORD", "correct horse")

    def attempt(password: str) -> AppTest:
        app = AppTest.from_function(_gated_page).run()  # a new browser session for every guess
        app.text_input[0].input(password)
        app.button[0].click().run()
        return app

    for _ in range(gate.WRONG_LIMIT):
        assert "Wrong password." in [e.value for e in attempt("guess").error]
    locked = attempt("correct horse")
    assert not _inside(locked) and "Too many wrong passwords" in locked.error[0].value
    now[0] += gate.WINDOW_SECONDS
    assert _inside(attempt("correct horse"))


def test_without_a_password_the_page_opens_on_loopback_and_refuses_off_it(monkeypatch):
    from streamlit import config

    monkeypatch.delenv("FACEQA_APP_PASSWORD", raising=False)
    assert _inside(AppTest.from_function(_gated_page).run())
    previous = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        app = AppTest.from_function(_gated_page).run()
    finally:
        config.set_option("server.address", previous)
    assert not _inside(app) and "without a password" in app.error[0].value


def test_streamlit_is_started_quiet_and_bound_to_the_bare_address(capsys):
    from faceqa.app.cli import streamlit_command

    command = streamlit_command("[::1]", 8501, ["faces.example"])
    options = {command[i]: [] for i in range(len(command)) if command[i].startswith("--")}
    for i, word in enumerate(command):
        if word in options:
            options[word].append(command[i + 1])
    assert command[1:4] == ["-m", "faceqa.app.launch", "run"]
    assert options["--server.address"] == ["::1"] and options["--browser.gatherUsageStats"] == ["false"]
    assert options["--logger.hideWelcomeMessage"] == ["true"]
    assert sorted(options["--server.allowedHosts"]) == ["127.0.0.1", "::1", "faces.example", "localhost"]
    assert "http://[::1]:8501" in capsys.readouterr().out
    wildcard = streamlit_command("0.0.0.0", 8501, [])
    assert wildcard[wildcard.index("--server.allowedHosts") + 1] == "*"
