"""The error contract: one body shape for every failure, on every backend.

Every layer raises :class:`HTTPError`; the handler turns it into the
response ``{"error": {"status": s, "message": m}}`` (plus ``"detail"``).
The helpers here build the errors that several layers raise alike.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

RETRY_AFTER_S = 1
"""What a 503 tells the client to wait before retrying, in seconds."""


class HTTPError(Exception):
    """Raise from an endpoint (or anywhere below it) to answer with ``status``.

    The body is ``{"error": {"status": s, "message": m}}`` plus ``"detail"``
    when one is given; ``headers`` are added to the response (``Retry-After``,
    ``Allow``...).
    """

    def __init__(
        self,
        status: int,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be an int from 400 to 599, got {status!r}")
        self.status = status
        self.message = message if message is not None else _reason(status)
        self.detail = detail
        self.headers = headers or {}
        super().__init__(status, self.message)

    def body(self) -> bytes:
        error: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return to_json({"error": error}, fallback=str)

    def copy(self) -> HTTPError:
        """A fresh instance with the same cause: one exception raised in many threads tangles tracebacks."""
        copy = HTTPError(self.status, self.message, self.detail, dict(self.headers))
        copy.__cause__ = self.__cause__
        return copy

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.message!r})"


def unavailable(message: str, detail: Any = None, retry_after_s: int = RETRY_AFTER_S) -> HTTPError:
    """A 503 with ``Retry-After``: the contract's "not now, try again" (not ready, overloaded, restarting)."""
    return HTTPError(503, message, detail, {"Retry-After": str(retry_after_s)})


Locate = Callable[[tuple[Any, ...]], tuple[str, str]]
"""Maps a pydantic error location to where the value came from (``query``, ``body``...) and its field name."""


def validation_details(exc: ValidationError, locate: Locate) -> list[dict[str, Any]]:
    """The 422 ``detail`` entries, one per failing field: where it was, its name, why."""
    details = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        source, field = locate(error["loc"])
        details.append(validation_detail(source, field, error["msg"], error["type"]))
    return details


def validation_detail(source: str, field: str, message: str, kind: str) -> dict[str, Any]:
    return {"in": str(source), "field": field, "message": message, "type": kind}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
