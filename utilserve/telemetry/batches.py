"""The one seam around each batch a model runs, in every pool kind: its log line, its span and its metrics.

A model worker (a thread of the thread pool, a process-pool worker, a Ray
replica) runs each batch, and each step of a streaming model, inside
:func:`batch`. The origins of its items come with it, so what is said about
a batch names the requests it served, whichever process it runs in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from time import perf_counter

from .context import Origin
from .metrics import on
from .tally import tally
from .tracing import batch_span

logger = logging.getLogger("utilserve.batch")

NO_ID = "-"
"""Stands for an item submitted outside any request (a script, a test)."""


@contextmanager
def batch(
    model: str, origins: Sequence[Origin | None], joined: Sequence[Origin | None] | None = None
) -> Iterator[None]:
    """Run one batch of ``model`` (the body) for items of ``origins``: log it, trace it, count its size and duration.

    A one-shot batch leaves ``joined`` out: all its items are new, and the
    line and the span name them all. A streaming model's step passes the
    items that joined it: the line and the span name those, and both are
    left out when none did, since a step per output would drown the log.
    """
    new = origins if joined is None else joined
    if new and logger.isEnabledFor(logging.INFO):
        if joined is None:
            logger.info("model %s: batch of %d: %s", model, len(origins), request_ids(origins))
        else:
            ids = request_ids(joined)
            logger.info("model %s: %d joined the steps (%d active): %s", model, len(joined), len(origins), ids)
    span = batch_span(model, [origin.trace for origin in new if origin is not None]) if new else nullcontext()
    started = perf_counter()
    try:
        with span:
            yield
    finally:
        if on():
            tally.batch_ended(model, len(origins), perf_counter() - started)


def request_ids(origins: Sequence[Origin | None]) -> str:
    return " ".join(NO_ID if origin is None else origin.request_id for origin in origins)
