"""ASGI messages for apps called in process."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def asgi_scope(method: str, path: str, *headers: tuple[bytes, bytes], query: str = "") -> Message:
    """An HTTP request's scope, as a server on 127.0.0.1 would pass it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
