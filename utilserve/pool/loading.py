"""Where items wait while their pool loads, so that a cold start answers late rather than 503.

A fresh worker process, a pool whose model worker restarts, a process
pool whose supervisor is starting: each is a spell of loading that ends in
ready or failed. Items that come meanwhile wait for its end, each within its
own deadline, and no more of them than the model's queue would hold. One
watcher thread per spell wakes them all, so that waiting costs nothing per
item, on threads and on event loops alike.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from ..concurrency import start_without_signals
from ..errors import unavailable
from .base import Pool

CHECK_S = 0.1
"""How often the watcher looks again whether a pool that is not ready yet still loads (or has failed, stopped)."""


class Loading:
    """The wait of the items that come while ``pool`` loads, ``max_waiting`` of them at most."""

    def __init__(self, pool: Pool, name: str, max_waiting: int) -> None:
        self._pool = pool
        self._name = name
        self._max_waiting = max_waiting
        self._lock = threading.Lock()
        self._waiting = 0
        self._spell: Future[None] | None = None

    def wait(self, timeout: float) -> bool:
        """Block while the pool loads, ``timeout`` seconds at most; whether it was loading."""
        if not self._pool.loading:
            return False
        with self._admitted():
            try:
                self._spell_end().result(timeout)
            except TimeoutError:
                pass
        return True

    async def await_loaded(self, timeout: float) -> bool:
        """Like :meth:`wait`, on an event loop."""
        if not self._pool.loading:
            return False
        with self._admitted():
            await asyncio.wait([asyncio.wrap_future(self._spell_end())], timeout=timeout)
        return True

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise unavailable(f"model {self._name} is overloaded: {self._waiting} requests already wait for it")
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def _spell_end(self) -> Future[None]:
        with self._lock:
            if self._spell is None or self._spell.done():
                self._spell = Future()
                watcher = threading.Thread(
                    target=self._watch, args=(self._spell,), name=f"utilserve-{self._name}-loading", daemon=True
                )
                start_without_signals(watcher)
            return self._spell

    def _watch(self, spell: Future[None]) -> None:
        try:
            while self._pool.loading:
                self._pool.wait_ready(CHECK_S)
        except RuntimeError:
            pass  # setup failed: each item gets the pool's own 503 saying so
        finally:
            spell.set_result(None)
