"""The command line: `utilserve run` on every backend, `utilserve openapi` validated."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from openapi_spec_validator import validate

from utilserve.backends import BACKENDS

from ..support.servers import ROOT, Server, free_port


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_serves_the_example(backend: str, running: Callable[[Server], Server]) -> None:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "utilserve",
        "run",
        "examples.hello:service",
        "--backend",
        backend,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = running(Server(argv, port).start())
    assert httpx.get(server.url + "/api/hello?name=x").json() == {"message": "hello x"}
    assert httpx.get(server.url + "/api/items/7").json() == {"id": 7}
    echoed = httpx.post(server.url + "/api/echo", json={"name": "pen", "price": 2})
    assert echoed.json() == {"name": "pen", "price": 2.0}
    missing = httpx.get(server.url + "/api/items/0")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"status": 404, "message": "item 0 does not exist"}}


def test_openapi_document_is_valid_and_complete() -> None:
    output = subprocess.run(
        [sys.executable, "-m", "utilserve", "openapi", "examples.hello:service"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    document = json.loads(output)
    validate(document)
    paths = document["paths"]
    assert set(paths) == {"/api/hello", "/api/echo", "/api/items/{item_id}"}
    hello = paths["/api/hello"]["get"]
    assert hello["parameters"] == [
        {"name": "name", "in": "query", "required": False, "schema": {"default": "world", "type": "string"}}
    ]
    item = paths["/api/items/{item_id}"]["get"]["parameters"][0]
    assert item["in"] == "path" and item["required"] and item["schema"]["type"] == "integer"
    body = paths["/api/echo"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Item"}
    assert document["components"]["schemas"]["Item"]["required"] == ["name", "price"]
    response = paths["/api/echo"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert response == {"$ref": "#/components/schemas/Item"}


def test_openapi_of_the_conformance_app_is_valid() -> None:
    from tests.apps.conformance import service

    document = service.openapi()
    validate(document)
    upload = document["paths"]["/api/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["properties"]["file"] == {"type": "string", "format": "binary"}
    header = document["paths"]["/api/header"]["get"]["parameters"][0]
    assert header == {"name": "x-token", "in": "header", "required": True, "schema": {"type": "string"}}


def test_bad_target_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "utilserve", "openapi", "examples.hello"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "TARGET must be 'module:attribute'" in result.stderr
