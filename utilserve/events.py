"""Server-Sent Events: the framing of one message, free of any I/O.

An endpoint returns an :class:`EventStream`; the streaming path sends each
item as one message built by :func:`encode`, a :data:`HEARTBEAT` comment when
the stream is quiet for ``ping_s``, and :func:`error_event` if it fails after
the first chunk (the status line is gone by then). The framing follows
https://html.spec.whatwg.org/multipage/server-sent-events.html.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

MEDIA_TYPE = "text/event-stream"
HEADERS = (("cache-control", "no-cache"), ("x-accel-buffering", "no"))
"""Stop caches and proxies (nginx buffers by default) from holding events back."""
HEARTBEAT = b": ping\n\n"
"""A comment: clients ignore it, proxies see traffic and keep the connection open."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
"""The three line endings a client splits on; ``str.splitlines`` splits on more."""


@dataclass(frozen=True, slots=True)
class Event:
    """One message with its fields; a plain item in a stream is sent as ``data`` only.

    ``data`` is sent as is when it is a ``str``, as compact JSON otherwise.
    The fields are checked here, where they are written, rather than mid-stream.
    """

    data: Any
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def __post_init__(self) -> None:
        for name in ("event", "id"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"Event {name} must be a str, got {value!r}")
            if "\n" in value or "\r" in value:
                raise ValueError(f"Event {name} must not contain a line break, got {value!r}")
        if self.id is not None and "\0" in self.id:
            raise ValueError(f"Event id must not contain NUL (clients ignore such an id), got {self.id!r}")
        if self.retry is not None and (type(self.retry) is not int or self.retry < 0):
            raise ValueError(f"Event retry must be a non-negative int of milliseconds, got {self.retry!r}")


class EventStream:
    """What an endpoint returns to answer ``text/event-stream``: its items, and how often to ping."""

    __slots__ = ("items", "ping_s")

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any], ping_s: float = 15.0) -> None:
        if isinstance(items, (str, bytes)) or not isinstance(items, (Iterable, AsyncIterable)):
            raise TypeError(f"EventStream items must be an iterable or async iterable of events, got {items!r}")
        if isinstance(ping_s, bool) or not isinstance(ping_s, (int, float)) or not math.isfinite(ping_s) or ping_s <= 0:
            raise ValueError(f"EventStream ping_s must be a positive, finite number of seconds, got {ping_s!r}")
        self.items = items
        self.ping_s = float(ping_s)

    def __repr__(self) -> str:
        return f"EventStream({self.items!r}, ping_s={self.ping_s})"


def encode(item: Any) -> bytes:
    """One item as one message: its fields, one ``data:`` line per line of data, a blank line."""
    event = item if isinstance(item, Event) else Event(item)
    lines: list[str] = []
    if event.event is not None:
        lines.append(f"event: {event.event}")
    if event.id is not None:
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
    data = event.data if isinstance(event.data, str) else to_json(event.data).decode()
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode()


def error_event(body: bytes) -> bytes:
    """``event: error`` carrying the error contract's body: the status line was sent with the first chunk."""
    return encode(Event(body.decode(), event="error"))
