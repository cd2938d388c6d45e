"""WSGI apps run through wsgiref's validator and wsgiref's own handler, in process, each app in a process of its own.

A spawned process imports the app with its environment (Django takes one set of settings per process, and the
conformance app reads its backend from the environment), wraps it in ``wsgiref.validate.validator`` and runs each
request through wsgiref's handler, as wsgiref's simple server would. ``ValidatedApp`` is the httpx transport that
sends requests there. A complaint of the validator or the handler (an AssertionError, or a WSGIWarning: warnings
are errors there) fails the request with its traceback, where a server would have logged it and sent a 500.
"""

from __future__ import annotations

import http.client
import importlib
import io
import multiprocessing
import os
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote
from wsgiref.handlers import SimpleHandler
from wsgiref.validate import WSGIWarning, validator

import httpx

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Exchange = tuple[str, str, list[tuple[str, str]], bytes]
"""A request as it crosses to the app's process: method, target (path?query), header fields, body."""

TIMEOUT = 30.0

UNKNOWN_METHOD = "Unknown REQUEST_METHOD"
"""The validator's warning for methods beyond the eight it knows: it judges the client, and the conformance table
sends QUERY and PROPFIND on purpose."""


class Complaint(AssertionError):
    """What the validator or wsgiref's handler found wrong, with the traceback from the app's process."""


class _Handler(SimpleHandler):
    """wsgiref's handler, minus this process's environment, and whose failures raise instead of becoming a 500."""

    os_environ: dict[str, str] = {}

    def handle_error(self) -> None:
        raise  # run() calls this while handling the failure: re-raise it


def environ(method: str, target: str, fields: list[tuple[str, str]]) -> dict[str, Any]:
    """The CGI variables of a request, as wsgiref's simple server sets them.

    A body without Content-Length (chunked) comes whole, with ``wsgi.input_terminated`` as gunicorn, waitress and
    granian set it: wsgiref's own server reads no chunked bodies.
    """
    path, _, query = target.partition("?")
    variables: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path, "iso-8859-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
    }
    for name, value in fields:
        key = name.upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        variables[key] = f"{variables[key]},{value}" if key in variables else value
    if "CONTENT_LENGTH" not in variables:
        variables["wsgi.input_terminated"] = True
    return variables


def exchange(app: WSGIApp, request: Exchange) -> bytes:
    """The bytes wsgiref's handler writes for ``request``, answered by ``validator(app)``."""
    method, target, fields, body = request
    written = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        warnings.filterwarnings("ignore", UNKNOWN_METHOD, WSGIWarning)
        handler = _Handler(io.BytesIO(body), written, io.StringIO(), environ(method, target, fields))
        handler.run(validator(app))
    return written.getvalue()


def _serve(connection: Connection, target: str, env: Mapping[str, str]) -> None:
    """The app's process: import ``target`` ("module:attribute") with ``env``, then answer until told to stop."""
    os.environ.update(env)
    try:
        module, _, attribute = target.partition(":")
        app = getattr(importlib.import_module(module), attribute)
    except Exception:  # noqa: BLE001 - sent to the test, which fails with it
        connection.send(("failed", traceback.format_exc()))
        return
    connection.send(("ready", b""))
    while (request := connection.recv()) is not None:
        try:
            connection.send(("answered", exchange(app, request)))
        except Exception:  # noqa: BLE001 - the validator's complaint, sent to the test, which fails with it
            connection.send(("failed", traceback.format_exc()))


class _Wire:
    """The socket http.client.HTTPResponse reads from: the bytes wsgiref's handler wrote."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


class ValidatedApp(httpx.BaseTransport):
    """The WSGI app ``target`` in a spawned process with ``env``; ``close`` stops the process.

    ``requests`` and ``complaints`` count what it was sent and what the validator found wrong.
    """

    def __init__(self, target: str, env: Mapping[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, target, dict(env)), daemon=True)
        self._process.start()
        child.close()
        self.requests = 0
        self.complaints = 0
        self._receive("ready")

    def _receive(self, expected: str) -> bytes:
        if not self._connection.poll(TIMEOUT):
            raise TimeoutError(f"no answer from the app's process within {TIMEOUT}s")
        outcome, payload = self._connection.recv()
        if outcome == "failed":
            raise Complaint(payload)
        assert outcome == expected, outcome
        return payload

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fields = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        self._connection.send((request.method, request.url.raw_path.decode("ascii"), fields, request.read()))
        self.requests += 1
        try:
            written = self._receive("answered")
        except Complaint:
            self.complaints += 1
            raise
        wire = http.client.HTTPResponse(_Wire(written), method=request.method)  # type: ignore[arg-type]  # makefile
        wire.begin()
        return httpx.Response(wire.status, headers=wire.getheaders(), content=wire.read(), request=request)

    def close(self) -> None:
        self._connection.send(None)
        self._process.join(TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()
