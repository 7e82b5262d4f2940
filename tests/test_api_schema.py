"""`response_format` JSON Schemas: nothing is fetched, every hostile schema is a 400, and the work is bounded.

A schema is client input run on the server. The old checker let jsonschema resolve a `$ref`
by fetching it (any URL, any `file:`), recursed for ever on `{"$ref": "#"}`, crashed on a
`$ref` to a string, and validated a 50,000-branch `anyOf` on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from api_server import ask, group_url, running, stand_in

from faceqa.app import response_schema
from faceqa.app.config import ServerConfig

SECRET = "s3cr3t-4f9e"


class _Secrets(BaseHTTPRequestHandler):
    """What a server-side request forgery would reach: a JSON document with a secret in it."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        _Secrets.hits.append(self.path)
        body = json.dumps({"client_secret": SECRET, "type": "object"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def secrets_url():
    with stand_in(_Secrets) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def client():
    with running(ServerConfig()) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


PHOTO = group_url()


def with_schema(schema: dict) -> dict:
    return ask("Who looks the oldest?", PHOTO, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})


def refused(response: httpx.Response, code: str = "invalid_schema") -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, "response_format.json_schema.schema"), error
    return error["message"]


def post(client: httpx.Client, schema: dict) -> httpx.Response:
    return client.post("/v1/chat/completions", json=with_schema(schema))


# --- nothing is fetched --------------------------------------------------------------------------------


def test_a_remote_or_file_ref_is_never_fetched_nor_echoed(client, secrets_url, tmp_path):
    secret_file = tmp_path / "secret.json"
    secret_file.write_text(json.dumps({"client_secret": SECRET}))
    _Secrets.hits.clear()
    for ref in (f"{secrets_url}/secret.json", f"{secrets_url}/secret.json#/client_secret",
                f"{secrets_url}/openapi.json", secret_file.as_uri(), f"{secret_file.as_uri()}#/client_secret",
                "file:///dev/zero", "other.json#/a"):
        schema = {"type": "object", "properties": {"answer": {"$ref": ref}}}
        response = post(client, schema)
        message = refused(response)
        assert SECRET not in response.text and "local reference" in message
    for schema in ({"$id": f"{secrets_url}/base/", "properties": {"answer": {"$ref": "secret.json"}}},
                   {"properties": {"answer": {"$id": f"{secrets_url}/", "$ref": "#/client_secret"}}},
                   {"$dynamicRef": f"{secrets_url}/secret.json"}):
        assert SECRET not in post(client, schema).text
    assert _Secrets.hits == []


def test_local_refs_into_defs_work(client):
    schema = {"type": "object", "required": ["answer", "faces"], "$defs": {
        "text": {"type": "string"}, "ids": {"type": "array", "items": {"$ref": "#/$defs/id"}},
        "id": {"type": "integer"}}, "properties": {"answer": {"$ref": "#/$defs/text"},
                                                   "faces": {"$ref": "#/$defs/ids"}}}
    response = post(client, schema)
    assert response.status_code == 200, response.text
    assert set(json.loads(response.json()["choices"][0]["message"]["content"])) >= {"answer", "faces"}


# --- hostile schemas are a 400, never a 500 ------------------------------------------------------------

RECURSIVE = [
    {"$ref": "#"},
    {"type": "object", "properties": {"answer": {"$ref": "#"}}},
    {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}},
     "properties": {"answer": {"$ref": "#/$defs/a"}}},
    {"definitions": {"node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/node"}}}},
     "$ref": "#/definitions/node"},
]


@pytest.mark.parametrize("schema", RECURSIVE)
def test_recursive_schemas_are_refused(client, schema):
    assert "recursive" in refused(post(client, schema))


@pytest.mark.parametrize("schema", [
    {"properties": {"answer": {"type": "string"}, "task": {"$ref": "#/properties/answer/type"}}},
    {"enum": [{"type": 12}], "properties": {"answer": {"$ref": "#/enum/0"}}},
    {"x-mine": {"type": 12}, "properties": {"answer": {"$ref": "#/x-mine"}}},
    {"properties": {"answer": {"$ref": "#/$defs/missing"}}},
    {"properties": {"answer": {"$ref": 7}}},
    {"$schema": ["not", "a", "string"]},
    {"$schema": "http://json-schema.org/draft-03/schema#", "extends": {"type": 12}},
    {"$schema": "http://json-schema.org/draft-07/schema##"},
])
def test_refs_land_on_subschemas_and_the_dialect_is_known(client, schema):
    refused(post(client, schema))


def test_a_property_named_pattern_is_a_name_not_the_keyword(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "pattern": {"type": "string"},
                                               "patternProperties": {"type": "object"}}}
    assert post(client, schema).status_code == 200
    for keyword in ({"pattern": "^(a+)+$"}, {"patternProperties": {"^(a+)+$": {}}}):
        schema = {"$defs": {"hidden": keyword}, "properties": {"answer": {"$ref": "#/$defs/hidden"}}}
        assert "regular expressions" in refused(post(client, schema))


# --- bounded work --------------------------------------------------------------------------------------


def test_a_large_schema_is_refused_by_its_size_bound(client):
    wide = {"anyOf": [{"type": "string", "minLength": i} for i in range(response_schema.MAX_NODES // 2)]}
    assert "values" in refused(post(client, wide), "schema_too_large")


def test_a_deep_schema_is_refused_by_its_depth_bound(client):
    deep: dict = {"type": "string"}
    for _ in range(response_schema.MAX_DEPTH):
        deep = {"not": {"not": deep}}
    assert "deeper" in refused(post(client, deep), "schema_too_large")


def test_a_schema_that_grows_when_its_refs_are_followed_is_refused(client):
    # 30 definitions, each using the next twice: 60 values on the wire, 2^30 subschemas to validate.
    defs = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(30)}
    defs["d30"] = {"type": "object"}
    schema = {"$defs": defs, "$ref": "#/$defs/d0"}
    assert "expands" in refused(post(client, schema), "schema_too_large")
    chain = {f"c{i}": {"$ref": f"#/$defs/c{i + 1}"} for i in range(200)}
    chain["c200"] = {"type": "object"}
    assert "deeper" in refused(post(client, {"$defs": chain, "$ref": "#/$defs/c0"}), "schema_too_large")


def test_schema_work_runs_on_a_worker_thread_not_the_event_loop(client, monkeypatch):
    on_loop, threads = [], []

    def spying(function):
        def spy(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop.append(function.__name__)
            except RuntimeError:  # no event loop runs in this thread
                on_loop.append(None)
            threads.append(threading.current_thread().name)
            return function(*args, **kwargs)
        return spy

    monkeypatch.setattr(response_schema, "check", spying(response_schema.check))
    monkeypatch.setattr(response_schema, "best_error", spying(response_schema.best_error))
    response = post(client, {"type": "object", "properties": {"answer": {"type": "string"}}})
    assert response.status_code == 200, response.text
    assert on_loop == [None, None]  # checked, then applied to the answer: both off the loop
    # The check (the costly part) on the schema thread, never on the threads shared with photo decoding.
    assert threads[0].startswith("faceqa-schema")
