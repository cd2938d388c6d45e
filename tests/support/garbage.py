"""The reference cycles that requests leave for the collector, counted in a process of its own.

``python -m tests.support.garbage module:attribute wsgi|asgi`` serves the
app in process (an ASGI app after its lifespan startup), sends each request
of ``REQUESTS`` once to warm it, then ``ROUNDS`` more times between two full
collections with ``gc.DEBUG_SAVEALL``, and prints, as JSON, the objects the
second collection found unreachable per request, by type: marked
``utilserve:`` where utilserve owns the object. Each app gets a process of
its own: Django takes one set of settings per process.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any
from wsgiref.util import setup_testing_defaults

import utilserve

from .asgi import asgi_scope

Exchange = tuple[str, str, bytes]
"""Method, target (path?query), body."""

REQUESTS: dict[str, Exchange] = {
    "sync endpoint": ("GET", "/hello", b""),
    "async endpoint": ("GET", "/ahello?n=3", b""),
    "validated body": ("POST", "/ingest", b'{"name": "a", "size": 3}'),
    "422": ("POST", "/ingest", b'{"name": "a"}'),
    "404": ("GET", "/nowhere", b""),
    "slow, watched": ("GET", "/slow", b""),
    "500": ("GET", "/boom", b""),
    "model, awaited": ("POST", "/adouble?x=2", b""),
    "model, blocking": ("POST", "/double?x=2", b""),
}
ROUNDS = 10
OURS = os.path.dirname(utilserve.__file__) + os.sep


def census(app: Any, kind: str) -> dict[str, dict[str, float]]:
    """Per exchange of ``REQUESTS``: the unreachable objects one request leaves, by type."""
    if kind == "wsgi":
        return {label: _counted(partial(_wsgi, app, *exchange)) for label, exchange in REQUESTS.items()}
    return asyncio.run(_asgi_census(app))


async def _asgi_census(app: Any) -> dict[str, dict[str, float]]:
    startup: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup.get, lifespan_send))
    await asyncio.wait({lifespan, asyncio.ensure_future(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
    counts = {}
    for label, exchange in REQUESTS.items():
        await _asgi(app, *exchange)
        with _unreachable() as found:
            for _ in range(ROUNDS):
                await _asgi(app, *exchange)
            await asyncio.sleep(0.05)  # the tasks that a request's end cancels run their last step
        counts[label] = found()
    await startup.put({"type": "lifespan.shutdown"})
    await asyncio.gather(lifespan, return_exceptions=True)  # an app without lifespan refuses it (as uvicorn's "auto")
    return counts


def _counted(send: Callable[[], object]) -> dict[str, float]:
    send()
    with _unreachable() as found:
        for _ in range(ROUNDS):
            send()
    return found()


@contextmanager
def _unreachable() -> Iterator[Callable[[], dict[str, float]]]:
    types: collections.Counter[str] = collections.Counter()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield lambda: {name: count / ROUNDS for name, count in types.items()}
        gc.collect()
        types.update(_name(thing) for thing in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _name(thing: object) -> str:
    """The type's name; for code running or to run (a frame, a coroutine, a function), the code's too.

    Marked ``utilserve:`` when utilserve owns it: utilserve's code, or an object of a utilserve class that
    derives from no framework's (an adapter's subclass of a framework's response is the framework's to free).
    """
    code = getattr(thing, "f_code", None) or getattr(thing, "cr_code", None) or getattr(thing, "__code__", None)
    name = type(thing).__qualname__ + (f" {code.co_qualname}" if code is not None else "")
    if code is not None:
        ours = code.co_filename.startswith(OURS)
    else:
        ours = type(thing).__module__.startswith("utilserve.") and all(
            cls.__module__.startswith("utilserve.") or cls.__module__ == "builtins" for cls in type(thing).__mro__
        )
    return f"utilserve: {name}" if ours else name


def _wsgi(app: Any, method: str, target: str, body: bytes) -> None:
    path, _, query = target.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    result = app(environ, lambda status, headers, exc_info=None: None)
    try:
        b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()


async def _asgi(app: Any, method: str, target: str, body: bytes) -> None:
    path, _, query = target.partition("?")
    headers = (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))
    scope = asgi_scope(method, path, *headers, query=query)
    answered = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()  # as a server does: the client leaves only once answered
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    await app(scope, receive, send)


if __name__ == "__main__":
    module, _, attribute = sys.argv[1].partition(":")
    application = getattr(importlib.import_module(module), attribute)
    print(json.dumps(census(application, sys.argv[2])))
