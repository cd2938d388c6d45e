"""What the pool tests that run in this process share: how long they wait, and a call's outcome."""

from __future__ import annotations

from typing import Any

from utilserve.errors import HTTPError

WAIT_S = 10.0
"""Upper bound for anything a test waits on, so a bug fails instead of hanging."""


def outcome(call: Any, *args: Any, **kwargs: Any) -> Any:
    """The call's result, or the HTTPError it raised."""
    try:
        return call(*args, **kwargs)
    except HTTPError as error:
        return error
