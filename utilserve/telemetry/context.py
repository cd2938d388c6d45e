"""The origin of the work under way: which request it serves, and in which trace."""

from __future__ import annotations

import contextvars
import random
import re
from dataclasses import dataclass, field

REQUEST_ID_HEADER = "x-request-id"

_SAFE_REQUEST_ID = re.compile(r"[!-~]{1,128}")
"""At most 128 printable ASCII characters, no spaces: safe to echo in a header and to log."""


@dataclass(frozen=True)
class Origin:
    """Plain data, so that it crosses the process pool's wire and Ray as it is."""

    request_id: str
    trace: dict[str, str] = field(default_factory=dict)
    """The W3C trace context (``traceparent``, ``tracestate``) of the request's span, when traces are on."""


_current: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("utilserve_origin", default=None)


def current() -> Origin | None:
    """The origin of the work this code runs for, or None outside a request."""
    return _current.get()


def enter(origin: Origin | None) -> contextvars.Token[Origin | None]:
    return _current.set(origin)


def leave(token: contextvars.Token[Origin | None]) -> None:
    _current.reset(token)


def request_id_from(offered: str | None) -> str:
    """The client's ``X-Request-ID`` when it is safe, else a new one."""
    if offered is not None and _SAFE_REQUEST_ID.fullmatch(offered):
        return offered
    return new_request_id()


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)
"""The version (4) and variant (RFC 4122) bits of a random UUID, as ``uuid.UUID(version=4)`` sets them."""


def new_request_id() -> str:
    """A random UUID4's hex, from the process's random generator (reseeded at fork): an id names, it guards nothing."""
    return "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
