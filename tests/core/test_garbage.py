"""Requests leave no reference cycles of utilserve's: what utilserve allocates for a request is freed as it ends.

Cyclic garbage waits for the collector, whose passes cost every request on a
busy server: at high concurrency a request's objects outlive the young
generation, and each one that dies in a cycle is found only by a full pass.
Each backend's app serves every kind of request path in process
(``tests.support.garbage``), and no object that the collector finds may be
utilserve's: one of its classes, or a frame, coroutine or function of its
code. Frameworks leave cycles of their own (Werkzeug's router, Django's and
Sanic's ASGI handlers), which the failure message shows beside ours.
Tornado's app is served only by Tornado's server, so it has no in-process
census; its adapter calls the same core as the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.garbage import REQUESTS

APP = "tests.apps.garbage:app"
BACKENDS = {  # label: UTILSERVE_BACKEND, and the app's kind
    "starlette": ("starlette", "asgi"),
    "fastapi": ("fastapi", "asgi"),
    "flask": ("flask", "wsgi"),
    "django-wsgi": ("django", "wsgi"),
    "django-asgi": ("django", "asgi"),
    "falcon-wsgi": ("falcon", "wsgi"),
    "falcon-asgi": ("falcon", "asgi"),
    "sanic": ("sanic", "asgi"),
}


def census(backend: str, kind: str, pool: str = "thread") -> dict[str, dict[str, float]]:
    env = {
        **os.environ,
        "UTILSERVE_POOL": pool,
        "UTILSERVE_BACKEND": backend,
        "UTILSERVE_ASYNCHRONOUS": "1" if kind == "asgi" else "0",
        "UTILSERVE_ACCESS_LOG": "0",
    }
    argv = [sys.executable, "-m", "tests.support.garbage", APP, kind]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("label", BACKENDS)
def test_no_request_leaves_a_cycle_of_utilserves(label: str) -> None:
    assert_none_of_ours(census(*BACKENDS[label]))


@pytest.mark.parametrize("label", ["starlette", "flask"])
def test_no_request_to_a_process_pool_leaves_a_cycle_of_utilserves(label: str) -> None:
    assert_none_of_ours(census(*BACKENDS[label], pool="process"))


def assert_none_of_ours(found: dict[str, dict[str, float]]) -> None:
    assert set(found) == set(REQUESTS)
    ours = {
        request: {name: n for name, n in left.items() if name.startswith("utilserve:")}
        for request, left in found.items()
    }
    assert ours == {request: {} for request in REQUESTS}, f"all that requests left, per request: {found}"
