"""Polling for a short while before sleeping, where an answer is due sooner than a wake-up costs.

A thread that sleeps in the kernel pays a wake-up when its socket becomes
ready: on a virtual machine whose CPU went idle, often more per hop than a
small model takes to run an item (BENCHMARKS.md has the figures). So when a model worker
runs out of work (nothing queued, the model free), one of its threads
polls its sockets for up to the budget before it sleeps; and a blocking
caller whose last answer came within the budget polls for its next one.
The cost is CPU spent polling: up to one budget each time a model worker
runs out of work, and for a caller of a slow model one budget on its
connection's first request, then none while answers stay slow.

``UTILSERVE_POOL_SPIN_US`` sets the budget in microseconds (default
:data:`DEFAULT_SPIN_US`); ``0`` turns polling off, for hosts where spare
CPU matters more than latency. Web processes and model workers read it
from their environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from time import perf_counter
from typing import TypeVar

SPIN_ENV = "UTILSERVE_POOL_SPIN_US"
DEFAULT_SPIN_US = 200

T = TypeVar("T")


def spin_budget() -> float:
    """The budget in seconds, from ``UTILSERVE_POOL_SPIN_US``."""
    raw = os.environ.get(SPIN_ENV, "").strip()
    if not raw:
        return DEFAULT_SPIN_US / 1e6
    try:
        micros = int(raw)
    except ValueError:
        micros = -1
    if micros < 0:
        raise ValueError(f"{SPIN_ENV} must be a whole number of microseconds >= 0, got {raw!r}")
    return micros / 1e6


def spin(poll: Callable[[], T], budget: float, give_up: Callable[[], bool] = lambda: False) -> T:
    """Call ``poll`` until it returns something truthy, ``give_up()`` is true or ``budget`` seconds passed.

    Returns ``poll``'s last result.
    """
    end = perf_counter() + budget
    found = poll()
    while not found and not give_up() and perf_counter() < end:
        found = poll()
    return found
