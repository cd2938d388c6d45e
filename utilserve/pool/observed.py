"""What the pool tells the metrics: how each item ended, and whether a model serves in this process.

Items are counted where their caller sees them end, in ``ModelHandle``:
the one place every pool kind shares, and the only one that sees every end
of an item, from a 503 before it reached any pool to a caller that left.
"""

from __future__ import annotations

import asyncio

from ..errors import HTTPError
from ..telemetry.metrics import on, record
from ..telemetry.tally import tally

OK = "ok"
ERROR = "error"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"


def ended(model: str, outcome: str) -> None:
    """Count one item of ``model`` that ended as ``outcome`` (one of ``ITEM_OUTCOMES``)."""
    if on():
        tally.item_ended(model, outcome)


def outcome_of(exc: BaseException) -> str:
    """How an item ended that raised ``exc`` to its caller.

    503s say "not now" (a full queue, a pool that is not ready, a worker
    lost) and 504s that the deadline passed; every other error is the
    model's. A caller that gave up (a cancelled task, a closed stream)
    cancelled it.
    """
    if isinstance(exc, HTTPError):
        if exc.status == 503:
            return REJECTED
        if exc.status == 504:
            return EXPIRED
        return ERROR
    if isinstance(exc, TimeoutError):
        return EXPIRED
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return CANCELLED
    return ERROR


def serving(model: str, ready: bool) -> None:
    """Say whether ``model`` serves in this process (1) or not (0), as its readiness changes."""
    record(lambda m: m.ready.labels(model).set(1 if ready else 0))
