"""schemathesis fuzzes the conformance service's OpenAPI document on every cell of the matrix.

The cases are drawn once (derandomized, so every run sends the same ones) and sent to every cell: drawing costs more
than sending, and the same requests make the cells comparable. Each cell must answer them with no 5xx, apart from
the endpoints that raise on purpose, and with no response the document does not describe: status, content type,
headers and body schema. The counts per cell show in the run's summary ("tools written by others").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi import from_dict
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ..support import tally
from ..support.cells import CELLS, ServerAnswer
from ..support.servers import Cell, serve

APP = "tests.apps.conformance:app"

RAISES_ON_PURPOSE = {
    "GET /api/boom": "an unhandled ZeroDivisionError: the conformance table's 500 case",
    "GET /api/aboom": "an unhandled RuntimeError in an async endpoint: the conformance table's other 500 case",
}
NOT_FUZZED = {
    "GET /api/sleep": "its input is a duration: fuzzed ones would make the run last as long as the fuzzer picks",
}
TWISTED_MULTIPART = ServerAnswer(400, "Twisted parses multipart bodies itself: one it cannot parse gets an empty 400")
SERVER_ANSWERS = {
    ("django-asgi@daphne", "POST /api/upload"): TWISTED_MULTIPART,
    ("django-asgi@daphne", "POST /api/blob"): TWISTED_MULTIPART,
}
"""(cell, operation): what the cell's server answers itself, before utilserve sees the request, and why."""

CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance, response_schema_conformance]
"""What the document says of responses. Not whether inputs are accepted: pydantic's lax mode takes true for an int,
which schemathesis's negative_data_rejection would count against a document that says integer."""

EXAMPLES = 15
"""Per operation and generation mode: about 600 requests a cell, 2 to 4 s a cell on 2 cores."""

DRAW = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    # Cases are collected, not tested: drawing large bodies is slow, and the head-size filter rejects some.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

HEAD_LIMIT = 2048
"""Bytes of request line and header fields at most: beyond a server's own limit (uWSGI's 4 KiB buffer, gunicorn's
4094-byte request line) the server answers before utilserve sees the request."""

REQUEST_FIELDS = ("method", "url", "headers", "params", "cookies", "data", "json", "files")


def head_size(case: Case) -> int:
    """Bytes of the request line and header fields that ``case`` sends."""
    sent = case.as_transport_kwargs(base_url="http://127.0.0.1")
    prepared = requests.Request(**{name: sent[name] for name in REQUEST_FIELDS if name in sent}).prepare()
    fields = sum(len(name) + len(value) + 4 for name, value in prepared.headers.items())
    return len(f"{prepared.method} {prepared.path_url} HTTP/1.1\r\n") + fields


def draw(operation: APIOperation, mode: GenerationMode) -> list[Case]:
    """Up to EXAMPLES cases of ``operation`` in ``mode``, each small enough for every server to pass on."""
    drawn: list[Case] = []

    @given(operation.as_strategy(generation_mode=mode))
    @DRAW
    def collect(case: Case) -> None:
        if head_size(case) > HEAD_LIMIT:
            reject()
        drawn.append(case)

    try:
        collect()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # Nothing that breaks the document can be sent: no inputs, or only a string in the path.
    return drawn


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from tests.apps.conformance import service

    return service.openapi()


@pytest.fixture(scope="module")
def cases(document: dict[str, Any]) -> list[Case]:
    """The cases every cell gets: positive and negative ones for each operation but NOT_FUZZED."""
    operations = [result.ok() for result in from_dict(document).get_all_operations()]
    fuzzed = [operation for operation in operations if operation.label not in NOT_FUZZED]
    assert len(fuzzed) == len(operations) - len(NOT_FUZZED), "a NOT_FUZZED operation is gone from the document"
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    drawn = [case for operation in fuzzed for mode in modes for case in draw(operation, mode)]
    assert {case.operation.label for case in drawn} == {op.label for op in fuzzed}, "an operation got no case"
    return drawn


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_fuzzed_requests_get_no_5xx_and_documented_answers(
    cell: Cell, document: dict[str, Any], cases: list[Case], running: Any
) -> None:
    server = running(serve(cell, APP))
    assert httpx.get(server.url + "/api/openapi.json").json() == document, "the cell serves another document"
    server_errors: Counter[str] = Counter()
    on_purpose: Counter[str] = Counter()
    server_answered = 0
    violations: dict[tuple[str, int, tuple[str, ...]], str] = {}
    counted: Counter[tuple[str, int, tuple[str, ...]]] = Counter()
    with requests.Session() as session:
        for case in cases:
            response = case.call(base_url=server.url, session=session, timeout=30)
            label = case.operation.label
            own = SERVER_ANSWERS.get((cell.name, label))
            if own and response.status_code == own.status and "json" not in response.headers.get("content-type", ""):
                server_answered += 1
                continue
            if response.status_code >= 500:
                (on_purpose if label in RAISES_ON_PURPOSE else server_errors)[label] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as failed:
                kind = (label, response.status_code, tuple(failure.title for failure in failed.exceptions))
                violations.setdefault(kind, str(failed))
                counted[kind] += 1
    tally.add(
        "schemathesis",
        cell.name,
        {
            "requests": len(cases),
            "5xx": server_errors.total(),
            "violations": counted.total(),
            "raised-on-purpose": on_purpose.total(),
            "server-answered": server_answered,
        },
    )
    assert not server_errors, f"5xx from {dict(server_errors)}:\n{server.output()}"
    assert not violations, "\n".join(f"{counted[kind]} x {kind}:\n{first}" for kind, first in violations.items())
    assert on_purpose.keys() == RAISES_ON_PURPOSE.keys(), "an endpoint that raises on purpose no longer does"
