"""wsgiref's validator around every WSGI app utilserve makes, with every case of the conformance table.

Each app runs in a process of its own (tests/support/wsgi.py): the backends' own WSGI apps, and native Flask, Django
and Falcon apps with the conformance API mounted. The validator and wsgiref's handler check the WSGI protocol
(environ use, status line, header fields, the iterable and its close); the table checks the answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest

from utilserve.api.builtin import HEALTH_PATHS

from ..support import tally
from ..support.wsgi import Complaint, ValidatedApp
from .test_conformance import CASES, Case, assert_answers, error

CONFORMANCE = "tests.apps.conformance:app"
MOUNTED = "tests.apps.mount_conformance:app"

APPS = {
    "flask": (CONFORMANCE, {"UTILSERVE_BACKEND": "flask"}),
    "django-wsgi": (CONFORMANCE, {"UTILSERVE_BACKEND": "django", "UTILSERVE_ASYNCHRONOUS": "0"}),
    "falcon-wsgi": (CONFORMANCE, {"UTILSERVE_BACKEND": "falcon", "UTILSERVE_ASYNCHRONOUS": "0"}),
    "mounted-in-flask": (MOUNTED, {"MOUNT_INTO": "flask"}),
    "mounted-in-django": (MOUNTED, {"MOUNT_INTO": "django"}),
    "mounted-in-falcon": (MOUNTED, {"MOUNT_INTO": "falcon"}),
}


BASE_URL = "http://127.0.0.1"


def outside_the_route(case: Case) -> bool:
    """Outside /api and the health paths, a native app answers, not utilserve."""
    path = case.path.partition("?")[0]
    return not (path == "/api" or path.startswith("/api/") or path in HEALTH_PATHS)


@pytest.fixture(scope="module", params=list(APPS))
def app_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def validated(app_name: str) -> Iterator[httpx.Client]:
    """A client of the app ``app_name``; what its validator counted goes to the run's summary."""
    app = ValidatedApp(*APPS[app_name])
    with httpx.Client(transport=app, base_url=BASE_URL) as client:
        yield client
    tally.add("wsgiref-validator", app_name, {"requests": app.requests, "complaints": app.complaints})


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_passes_the_validator(app_name: str, validated: httpx.Client, case: Case) -> None:
    response = validated.request(case.method, case.path, **case.send)
    if APPS[app_name][0] == MOUNTED and outside_the_route(case):
        assert response.status_code == 404 and b'"error":{"status"' not in response.content, response.text
    else:
        assert_answers(case, response)


def test_native_route_passes_the_validator(app_name: str, validated: httpx.Client) -> None:
    """A native app's own route answers beside utilserve; a backend's own app sends every path to utilserve."""
    target, env = APPS[app_name]
    response = validated.get("/native")
    if target == MOUNTED:
        assert response.json() == {"native": env["MOUNT_INTO"]}
    else:
        assert response.json() == error(404, "no route for /native")


StartResponse = Callable[..., Any]


def untyped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A 200 without Content-Type: the validator asserts there is one."""
    start_response("200 OK", [])
    return [b"x"]


def reasonless(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A status without its reason phrase: the validator only warns, which must fail the request too."""
    start_response("200", [("Content-Type", "text/plain")])
    return [b"x"]


@pytest.mark.parametrize(("name", "complaint"), [("untyped", "No Content-Type"), ("reasonless", "three-digit")])
def test_a_complaint_of_the_validator_fails_the_request(name: str, complaint: str) -> None:
    app = ValidatedApp(f"{__name__}:{name}", {})
    with httpx.Client(transport=app, base_url=BASE_URL) as client, pytest.raises(Complaint, match=complaint):
        client.get("/")
