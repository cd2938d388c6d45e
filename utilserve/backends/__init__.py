"""Backend adapters: one small module per web framework.

Each module translates between its framework and the core :class:`Handler`
and provides two functions, the :class:`Adapter` protocol. The helpers here
read what WSGI and ASGI servers pass, the same way for every framework.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    from ..handler import Handler
    from ..http import SyncBody

BACKENDS = ("django", "flask", "starlette", "fastapi", "sanic", "tornado", "falcon")

_REQUIREMENTS = {
    "django": "Django",
    "flask": "Flask",
    "starlette": "Starlette",
    "fastapi": "FastAPI",
    "sanic": "Sanic",
    "tornado": "Tornado",
    "falcon": "Falcon",
}


class Adapter(Protocol):
    def application(self, handler: Handler, native: Any | None) -> Any:
        """A native app serving ``handler``: new, or ``native`` with utilserve mounted in it."""

    def run(self, app: Any, handler: Handler, host: str, port: int) -> None:
        """Serve ``app`` with the framework's development server until interrupted."""


def resolve_backend(backend: Any) -> str:
    """The backend name for a name, a framework module, or a native app instance."""
    if isinstance(backend, str):
        name = backend.strip().lower()
    elif isinstance(backend, ModuleType):
        name = backend.__name__.partition(".")[0]
    else:
        name = type(backend).__module__.partition(".")[0]
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return name


def load_adapter(name: str) -> Adapter:
    try:
        importlib.import_module(name)
    except ImportError:
        raise ImportError(f"backend {name!r} needs {_REQUIREMENTS[name]}: pip install 'utilserve[{name}]'") from None
    return cast(Adapter, importlib.import_module(f"{__name__}.{name}"))


def path_text(sent: bytes) -> str:
    """A path's bytes as text; bytes that are not UTF-8 stay as surrogate escapes, which the core refuses (400)."""
    return sent.decode("utf-8", "surrogateescape")


def wsgi_path(path: str, path_info: str) -> str:
    """The framework's ``path``, unless the server's PATH_INFO (bytes as latin-1, PEP 3333) is not UTF-8.

    Frameworks replace such bytes (U+FFFD) or re-escape them (%FF), each its own way.
    """
    return path if path_info.isascii() else _unless_utf8(path, path_info.encode("latin-1"))


def asgi_path(path: str, scope: Mapping[str, Any]) -> str:
    """The framework's ``path``, unless the bytes sent were not UTF-8: the server made them U+FFFD."""
    raw = scope.get("raw_path")
    if "\ufffd" not in path or not raw:
        return path
    return _unless_utf8(path, unquote_to_bytes(raw.partition(b"?")[0]))


def _unless_utf8(path: str, sent: bytes) -> str:
    try:
        sent.decode()
    except UnicodeDecodeError:
        return path_text(sent)
    return path


def wsgi_body(environ: Mapping[str, Any], bounded: SyncBody) -> SyncBody:
    """``bounded`` (read up to Content-Length), except for a body sent without one (chunked).

    Django and Falcon read such a body as empty. Where the server ends it
    itself (``wsgi.input_terminated``: gunicorn, waitress, granian) it is
    read to its end; uWSGI sets no such flag but hands the chunks out
    through its own API.
    """
    if environ.get("CONTENT_LENGTH"):
        return bounded
    if environ.get("wsgi.input_terminated"):
        return cast("SyncBody", environ["wsgi.input"].read)
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return _chunks_from(uwsgi)
    return bounded


CHUNK_TIMEOUT_S = 30
"""How long uWSGI waits for each chunk of a chunked body before the read fails (a 400)."""


def _chunks_from(uwsgi: Any) -> SyncBody:
    """``read(n)`` over ``uwsgi.chunked_read``, which hands out one chunk at a time."""
    pending = bytearray()
    ended = False

    def read(size: int) -> bytes:
        nonlocal ended
        while not ended and len(pending) < size:
            chunk = uwsgi.chunked_read(CHUNK_TIMEOUT_S)
            ended = not chunk
            pending.extend(chunk)
        data = bytes(pending[:size])
        del pending[:size]
        return data

    return read
