"""Run one batch through a model and turn whatever happens into per-item outcomes.

Every pool worker (a thread of the thread pool, a model worker process, a
Ray replica) calls :func:`run_batch`, so results, error statuses and messages are the same
whichever pool serves the model. It never raises for model misbehaviour:
each item ends as an ``Output`` or an ``HTTPError``, so no caller can hang.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import HTTPError
from .model import ErrorMapping, Model

logger = logging.getLogger("utilserve.pool")

Outcome = BaseModel | HTTPError


def run_batch(model: Model, name: str, batch: list[BaseModel]) -> list[Outcome]:
    """Call ``model.predict(batch)``; return exactly one outcome per item."""
    try:
        results = model.predict(batch)
    except Exception as exc:  # noqa: BLE001 - any model failure becomes an HTTP error
        return _for_each(batch, to_http_error(model, name, exc))
    try:
        results = list(results)
    except TypeError:
        return _fail_all(batch, f"model {name}: predict returned {type(results).__name__}, expected a list")
    if len(results) != len(batch):
        return _fail_all(
            batch,
            f"model {name}: predict returned {len(results)} results for a batch of {len(batch)}",
        )
    return [_outcome(model, name, index, result) for index, result in enumerate(results)]


def to_http_error(model: Model, name: str, exc: Exception) -> HTTPError:
    """Map a model exception to its declared status; unmapped ones are 500s.

    A mapped exception was declared client-facing by the model author, so its
    text is shown; an unmapped one may carry internals, so only its type is
    named and the traceback goes to the log.
    """
    if isinstance(exc, HTTPError):
        error = exc.copy()
    else:
        target = _mapped(type(model).errors, type(exc))
        if target is None:
            logger.error("model %s: predict raised %s", name, type(exc).__name__, exc_info=exc)
            error = HTTPError(500, f"model {name} failed: {type(exc).__name__}")
        elif isinstance(target, tuple):
            error = HTTPError(target[0], target[1])
        else:
            text = f": {exc}" if str(exc) else ""
            error = HTTPError(target, f"model {name}: {type(exc).__name__}{text}")
    error.__cause__ = exc
    return error


def _mapped(errors: ErrorMapping, exc_type: type[Exception]) -> int | tuple[int, str] | None:
    """The entry for the exception's nearest mapped class, so subclasses inherit a mapping."""
    for klass in exc_type.__mro__:
        if klass in errors:
            return errors[klass]
    return None


def _outcome(model: Model, name: str, index: int, result: Any) -> Outcome:
    output_cls = type(model).Output
    if isinstance(result, output_cls):
        return result
    if isinstance(result, Exception):
        return to_http_error(model, name, result)
    try:
        return output_cls.model_validate(result)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        return HTTPError(
            500,
            f"model {name}: predict returned an invalid {output_cls.__name__} for item {index} "
            f"({type(result).__name__}; {where}: {first['msg']})",
        )


def _fail_all(batch: list[BaseModel], message: str) -> list[Outcome]:
    logger.error(message)
    return _for_each(batch, HTTPError(500, message))


def _for_each(batch: list[BaseModel], error: HTTPError) -> list[Outcome]:
    """One instance per item: a single exception raised in many threads tangles tracebacks."""
    return [error, *(error.copy() for _ in batch[1:])]
