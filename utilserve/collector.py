"""Python's cyclic garbage collector, set for serving once a process has started its service or loaded a model.

Both settings below are on by default; ``UTILSERVE_GC=0`` leaves the
collector as Python sets it.

- **Freeze what startup made.** Modules, the API tree and a loaded model
  live as long as the process, yet each of the collector's full passes,
  which a busy server triggers again and again, walks them all.
  :func:`settle` collects once and then moves everything alive into the
  permanent generation (``gc.freeze``), where no pass looks. In a pre-fork
  server this also keeps the pages a worker shares with its master from
  being written by the collector's bookkeeping.
- **Let a request's objects die young.** Under concurrency, every request
  in flight holds objects across Python's young generation of 700
  allocations: they are promoted, and older generations' passes, which
  cost far more, come all the more often. A young generation of
  :data:`YOUNG_THRESHOLD` allocations lets those objects be freed, by
  reference counting, before they would be promoted.

Both rely on requests leaving no reference cycles, which
``tests/core/test_garbage.py`` holds utilserve to.
"""

from __future__ import annotations

import gc
import os

SWITCH = "UTILSERVE_GC"
YOUNG_THRESHOLD = 10_000
"""Allocations of tracked objects, less deallocations, between two passes over the young generation."""


def settle() -> None:
    """Freeze what is alive now and widen the young generation; again after each model loads, to freeze it too."""
    if os.environ.get(SWITCH, "").strip().lower() in ("0", "false", "no"):
        return
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:  # 0: the user turned collection off, and it stays off
        gc.set_threshold(YOUNG_THRESHOLD, *older)
