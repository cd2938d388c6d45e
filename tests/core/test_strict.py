"""``Service(strict=True)``: pydantic's strict mode for bodies and model inputs, and JSON literals for strings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict

from utilserve import API, Request, Response, Service, api

from ..support.models.thread import Doubling


class Order(BaseModel):
    name: str
    qty: int
    at: datetime | None = None


class StrictOrder(BaseModel):
    model_config = ConfigDict(strict=True)
    qty: int


class Shop(API):
    @api.post
    def order(self, order: Order) -> dict[str, Any]:
        return order.model_dump(mode="json")

    @api.post
    def declared(self, order: StrictOrder) -> dict[str, Any]:
        return order.model_dump()

    @api.get
    def find(self, n: int = 0, x: float = 0.0, flag: bool = False, ids: list[int] | None = None) -> dict[str, Any]:
        return {"n": n, "x": x, "flag": flag, "ids": ids}

    @api.get
    def when(self, at: datetime, label: str = "") -> dict[str, Any]:
        return {"at": at.isoformat(), "label": label}

    @api.get("/items/{item_id}")
    def item(self, item_id: int, count: Annotated[int, api.Header("X-Count")] = 0) -> dict[str, Any]:
        return {"id": item_id, "count": count}

    @api.post
    def upload(self, tag: int, blob: Annotated[bytes, api.File()]) -> dict[str, Any]:
        return {"tag": tag, "size": len(blob)}


def call(svc: Service, method: str, path: str, query: str = "", body: Any = None, **headers: str) -> Response:
    data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    request = Request(method, path, query, {"content-type": "application/json", **headers}, data)
    return svc.setup().handle(request)


def answer(response: Response) -> Any:
    return json.loads(response.body)


def fields(response: Response) -> list[tuple[str, str, str]]:
    """Each failing field of a 422 as (where, name, pydantic type)."""
    assert response.status == 422, response.body
    error = answer(response)["error"]
    assert (error["status"], error["message"]) == (422, "request validation failed")
    return [(d["in"], d["field"], d["type"]) for d in error["detail"]]


@pytest.mark.parametrize("strict", [False, True])
def test_a_body_is_coerced_when_lax_and_refused_when_strict(strict: bool) -> None:
    svc = Service(name="strict-body", api=Shop, strict=strict)
    coerced = call(svc, "POST", "/order", body={"name": "tea", "qty": True})
    numeric_text = call(svc, "POST", "/order", body={"name": "tea", "qty": "3"})
    if strict:
        assert fields(coerced) == [("body", "qty", "int_type")]
        assert fields(numeric_text) == [("body", "qty", "int_type")]
        assert fields(call(svc, "POST", "/order", body={"name": 1, "qty": 1})) == [("body", "name", "string_type")]
    else:
        assert (coerced.status, answer(coerced)["qty"]) == (200, 1)
        assert (numeric_text.status, answer(numeric_text)["qty"]) == (200, 3)


def test_a_strict_body_still_reads_what_json_can_only_write_as_a_string() -> None:
    svc = Service(name="strict-iso", api=Shop, strict=True)
    response = call(svc, "POST", "/order", body={"name": "tea", "qty": 2, "at": "2024-05-01T12:00:00Z"})
    assert (response.status, answer(response)) == (200, {"name": "tea", "qty": 2, "at": "2024-05-01T12:00:00Z"})


def test_a_lax_service_leaves_a_model_that_declares_itself_strict_strict() -> None:
    svc = Service(name="strict-declared", api=Shop, strict=False)
    assert fields(call(svc, "POST", "/declared", body={"qty": "3"})) == [("body", "qty", "int_type")]


@pytest.mark.parametrize(
    ("query", "lax", "strict"),
    [
        ("n=3&x=1&flag=true&ids=1&ids=2", {"n": 3, "x": 1.0, "flag": True, "ids": [1, 2]}, "same"),
        ("n=-4&x=2.5e1&flag=false", {"n": -4, "x": 25.0, "flag": False, "ids": None}, "same"),
        ("flag=yes", {"n": 0, "x": 0.0, "flag": True, "ids": None}, [("query", "flag", "bool_type")]),
        ("flag=1", {"n": 0, "x": 0.0, "flag": True, "ids": None}, [("query", "flag", "bool_type")]),
        ("n=03", {"n": 3, "x": 0.0, "flag": False, "ids": None}, [("query", "n", "int_type")]),
        ("n=%2B3", {"n": 3, "x": 0.0, "flag": False, "ids": None}, [("query", "n", "int_type")]),
        ("n=3.0", {"n": 3, "x": 0.0, "flag": False, "ids": None}, [("query", "n", "int_type")]),
        ("x=inf", {"n": 0, "x": float("inf"), "flag": False, "ids": None}, [("query", "x", "float_type")]),
        ("ids=1&ids=1_000", {"n": 0, "x": 0.0, "flag": False, "ids": [1, 1000]}, [("query", "ids.1", "int_type")]),
    ],
)
def test_query_strings_are_read_as_the_json_literals_they_spell_when_strict(
    query: str, lax: dict[str, Any], strict: Any
) -> None:
    loose = call(Service(name="lax-query", api=Shop, strict=False), "GET", "/find", query)
    assert (loose.status, answer(loose)) == (200, lax)
    tight = call(Service(name="strict-query", api=Shop, strict=True), "GET", "/find", query)
    if strict == "same":
        assert (tight.status, answer(tight)) == (200, lax)
    else:
        assert fields(tight) == strict


def test_strict_strings_keep_string_types_as_they_are() -> None:
    svc = Service(name="strict-text", api=Shop, strict=True)
    response = call(svc, "GET", "/when", "at=2024-05-01T12:00:00%2B02:00&label=42")
    assert (response.status, answer(response)) == (200, {"at": "2024-05-01T12:00:00+02:00", "label": "42"})
    assert fields(call(svc, "GET", "/when", "at=2024-05-01")) == [("query", "at", "datetime_parsing")]


def test_strict_path_and_header_values_are_json_literals_too() -> None:
    svc = Service(name="strict-path", api=Shop, strict=True)
    response = call(svc, "GET", "/items/7", **{"x-count": "2"})
    assert (response.status, answer(response)) == (200, {"id": 7, "count": 2})
    bad = call(svc, "GET", "/items/007", **{"x-count": "+2"})
    assert fields(bad) == [("path", "item_id", "int_type"), ("header", "x-count", "int_type")]


def form(name: str) -> tuple[bytes, str]:
    """A multipart body with one file, ``abc``, under ``name``; and its content type."""
    body = f'--b0\r\nContent-Disposition: form-data; name="{name}"; filename="a.bin"\r\n\r\nabc\r\n--b0--\r\n'
    return body.encode(), "multipart/form-data; boundary=b0"


@pytest.mark.parametrize("strict", [False, True])
def test_uploads_are_bound_beside_strict_or_lax_strings(strict: bool) -> None:
    svc = Service(name="strict-upload", api=Shop, strict=strict)
    body, content_type = form("blob")
    response = call(svc, "POST", "/upload", "tag=2", body, **{"content-type": content_type})
    assert (response.status, answer(response)) == (200, {"tag": 2, "size": 3})
    body, content_type = form("other")
    missing = call(svc, "POST", "/upload", "tag=two", body, **{"content-type": content_type})
    refused = "int_type" if strict else "int_parsing"
    assert fields(missing) == [("query", "tag", refused), ("file", "blob", "missing")]


class StrictDoubling(Doubling):
    strict = True


class LaxDoubling(Doubling):
    strict = False


@pytest.fixture
def served() -> Iterator[list[Service]]:
    """Services the test starts; each is shut down after it."""
    started: list[Service] = []
    yield started
    for svc in started:
        svc.shutdown()


def model_service(strict: bool, model: type[Doubling], started: list[Service]) -> Service:
    svc = Service(name=f"strict-model-{strict}-{model.__name__}", strict=strict)
    svc.model(model, route="/double", pool="thread")
    svc.setup()
    svc.startup()
    started.append(svc)
    return svc


@pytest.mark.parametrize(
    ("strict", "model", "refuses"),
    [
        (False, Doubling, False),
        (True, Doubling, True),
        (False, StrictDoubling, True),
        (True, LaxDoubling, False),
    ],
)
def test_a_model_route_follows_the_service_unless_the_model_says(
    strict: bool, model: type[Doubling], refuses: bool, served: list[Service]
) -> None:
    svc = model_service(strict, model, served)
    assert svc.models[0].strict is refuses
    assert svc.models[0].wait_ready(10)
    response = call(svc, "POST", "/double", body={"x": True})
    if refuses:
        assert fields(response) == [("body", "x", "int_type")]
        assert fields(call(svc, "POST", "/double", body={"x": "21"})) == [("body", "x", "int_type")]
    else:
        assert (response.status, answer(response)) == (200, {"y": 2})
    assert call(svc, "POST", "/double", body={"x": 21}).body == b'{"y":42}'
