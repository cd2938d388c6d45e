"""The error contract: every failure becomes one JSON shape, on every backend."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic_core import to_json


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

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.message!r})"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
