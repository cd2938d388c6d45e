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
    checked = _one_per_item(name, "predict", results, len(batch))
    if isinstance(checked, HTTPError):
        return _for_each(batch, checked)
    return [_outcome(model, name, "predict", index, result) for index, result in enumerate(checked)]


def run_step(model: Model, name: str, states: list[Any]) -> list[Outcome | None]:
    """Call a streaming model's ``step(states)``; return one outcome per state, ``None`` where it gave none."""
    try:
        results = model.step(states)
    except Exception as exc:  # noqa: BLE001 - any model failure becomes an HTTP error
        return list(_for_each(states, to_http_error(model, name, exc)))
    checked = _one_per_item(name, "step", results, len(states))
    if isinstance(checked, HTTPError):
        return list(_for_each(states, checked))
    return [None if result is None else _outcome(model, name, "step", i, result) for i, result in enumerate(checked)]


def _one_per_item(name: str, method: str, results: Any, size: int) -> list[Any] | HTTPError:
    """The results as a list of ``size``, or the 500 that says what the model returned instead."""
    try:
        listed = list(results)
    except TypeError:
        message = f"model {name}: {method} returned {type(results).__name__}, expected a list"
    else:
        if len(listed) == size:
            return listed
        message = f"model {name}: {method} returned {len(listed)} results for a batch of {size}"
    logger.error(message)
    return HTTPError(500, message)


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
            logger.error("model %s raised %s", name, type(exc).__name__, exc_info=exc)
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


def _outcome(model: Model, name: str, method: str, index: int, result: Any) -> Outcome:
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
            f"model {name}: {method} returned an invalid {output_cls.__name__} for item {index} "
            f"({type(result).__name__}; {where}: {first['msg']})",
        )


def _for_each(batch: list[Any], error: HTTPError) -> list[Outcome]:
    """One instance per item: a single exception raised in many threads tangles tracebacks."""
    return [error, *(error.copy() for _ in batch[1:])]
