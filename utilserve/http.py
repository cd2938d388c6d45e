"""The neutral Request and Response that every backend adapter speaks.

An adapter fills a :class:`Request` from its native request and turns a
:class:`Response` back into a native one; everything in between is the core.
Parsing (query string, cookies, body) happens lazily and only once, so an
endpoint that reads nothing costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any, Protocol, TypeGuard
from urllib.parse import parse_qs

from pydantic_core import to_json

from .errors import HTTPError

logger = logging.getLogger("utilserve")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
NDJSON = "application/x-ndjson"

SyncBody = Callable[[int], bytes]
"""A ``read(n)`` callable over the request body (a WSGI input stream)."""
AsyncBody = AsyncIterable[bytes]
"""An async iterator of body chunks (an ASGI receive stream)."""
Chunks = Iterator[bytes] | AsyncIterator[bytes]
"""A response body sent as it is produced: sync for WSGI servers, async for ASGI ones."""


class HeaderMap(Protocol):
    """What the core needs of native headers: case-insensitive ``get``."""

    def get(self, key: str, /) -> Any: ...


class Request:
    """One HTTP request, as the core sees it."""

    __slots__ = (
        "_body",
        "_cookies",
        "_query",
        "_stream",
        "client",
        "headers",
        "method",
        "native",
        "path",
        "path_params",
        "query_string",
        "route",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str = "",
        headers: HeaderMap | None = None,
        body: bytes | SyncBody | AsyncBody = b"",
        client: str | None = None,
        native: Any = None,
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.query_string = query_string
        self.headers: HeaderMap = headers if headers is not None else {}
        self.client = client
        self.native = native
        self.path_params: dict[str, str] = {}
        self.route: str | None = None
        """The route template of the path (``/items/{item_id}``), set when a route has the path, even for another
        method; None until matched, or when none has it."""
        if isinstance(body, bytes):
            self._body: bytes | None = body
            self._stream: SyncBody | AsyncBody | None = None
        else:
            self._body = None
            self._stream = body
        self._query: dict[str, list[str]] | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True) if self.query_string else {}
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            self._cookies = _parse_cookies(self.headers.get("cookie") or "")
        return self._cookies

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def body(self) -> bytes:
        """The body read so far; :meth:`read_body` / :meth:`aread_body` load it."""
        if self._body is None:
            raise RuntimeError("request body not loaded yet: call read_body() or aread_body() first")
        return self._body

    def read_body(self, limit: int) -> bytes:
        """Read the whole body from a sync stream, refusing more than ``limit`` bytes (413)."""
        if self._body is None:
            stream = self._stream
            if not _is_reader(stream):
                raise RuntimeError("this request's body is an async stream: use aread_body()")
            declared = self._check_declared_length(limit)
            try:
                data = stream(limit + 1)
            except Exception as exc:
                raise _unreadable(exc) from exc
            if len(data) > limit:
                raise _too_large(limit)
            if declared is not None and len(data) < declared:  # some WSGI inputs just end where the client stopped
                raise _unreadable(EOFError(f"{len(data)} of {declared} bytes came"))
            self._body = data
        return self._body

    async def aread_body(self, limit: int) -> bytes:
        """Read the whole body from either kind of stream, refusing more than ``limit`` bytes."""
        if self._body is None:
            stream = self._stream
            if not isinstance(stream, AsyncIterable) or _is_reader(stream):
                return self.read_body(limit)
            self._check_declared_length(limit)
            chunks: list[bytes] = []
            size = 0
            try:
                async for chunk in stream:
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
            except HTTPError:
                raise
            except Exception as exc:
                raise _unreadable(exc) from exc
            self._body = b"".join(chunks)
        return self._body

    def _check_declared_length(self, limit: int) -> int | None:
        """The Content-Length, if given; one over ``limit`` is refused before reading (413)."""
        declared = self.headers.get("content-length")
        if not (declared and declared.isdigit()):
            return None
        if int(declared) > limit:
            raise _too_large(limit)
        return int(declared)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


class Response:
    """A response: status, headers and body bytes, or the chunks of a streamed body.

    ``content`` may be bytes (sent as is), str (text/plain), or anything
    JSON-serialisable, pydantic models included (application/json).
    """

    __slots__ = ("body", "chunks", "headers", "status")

    def __init__(
        self,
        content: Any = b"",
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status = status
        self.headers: list[tuple[str, str]] = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        body, default_type = render(content)
        self.body = body
        self.chunks: Chunks | None = None
        content_type = media_type or default_type
        if content_type and not any(name.lower() == "content-type" for name, _ in self.headers):
            self.headers.append(("content-type", content_type))

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)

    @classmethod
    def json(cls, body: bytes, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        """Wrap body bytes that are already JSON, without copying or re-encoding them."""
        response = cls.__new__(cls)
        response.status = status
        response.body = body
        response.chunks = None
        response.headers = [("content-type", JSON), *(headers or ())]
        return response

    @classmethod
    def stream(
        cls,
        content: Iterable[Any] | AsyncIterable[Any],
        media_type: str = BINARY,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> Response:
        """A body sent chunk by chunk as ``content`` yields: str or bytes as they are, anything else as an
        NDJSON line. Sync iterables are never iterated on an event loop."""
        response = cls(b"", status, headers, media_type)
        response.chunks = encoded(content)
        return response

    @classmethod
    def error(cls, error: HTTPError) -> Response:
        return cls.json(error.body(), error.status, list(error.headers.items()))

    def __repr__(self) -> str:
        size = "streamed" if self.chunks is not None else f"{len(self.body)} bytes"
        return f"<Response {self.status} {size}>"


def render(content: Any) -> tuple[bytes, str | None]:
    """Encode an endpoint's return value; the return-value rules live here only."""
    if isinstance(content, bytes):
        return content, BINARY if content else None
    if isinstance(content, str):
        return content.encode(), TEXT
    if isinstance(content, (bytearray, memoryview)):
        return bytes(content), BINARY
    return to_json(content), JSON


def chunk(item: Any) -> bytes:
    """One streamed item as bytes: str and bytes as they are, anything else as one NDJSON line."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return to_json(item) + b"\n"


def chunk_type(item: Any) -> str:
    """The media type of a stream whose first item is ``item``."""
    if isinstance(item, str):
        return TEXT
    return BINARY if isinstance(item, bytes) else NDJSON


def encoded(content: Iterable[Any] | AsyncIterable[Any]) -> Chunks:
    if isinstance(content, AsyncIterable):
        return _aencoded(content)
    return (chunk(item) for item in content)


async def _aencoded(content: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    async for item in content:
        yield chunk(item)


def _is_reader(stream: object) -> TypeGuard[SyncBody]:
    """A sync ``read(n)``; some native streams are both callable and async-iterable."""
    return callable(stream) and not hasattr(stream, "__aiter__")


def _too_large(limit: int) -> HTTPError:
    return HTTPError(413, f"request body exceeds the limit of {limit} bytes")


def _unreadable(exc: Exception) -> HTTPError:
    """A body the server could not read: malformed (bad chunking) or cut short (the client went away).

    The client's doing, so a 400 and an INFO line, never a 500 with a
    traceback that any client could flood the log with.
    """
    logger.info("request body could not be read: %s: %s", type(exc).__name__, exc)
    return HTTPError(400, f"the request body could not be read ({type(exc).__name__})")


def _parse_cookies(header: str) -> dict[str, str]:
    if not header:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}
