"""Sync endpoints never block an event loop: concurrent slow calls overlap in time."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..support.cells import CELLS
from ..support.servers import Cell, Server, serve

EVENT_LOOP_SERVERS = ("uvicorn", "sanic", "tornado", "hypercorn", "daphne", "granian-asgi")
EVENT_LOOP_CELLS = [c for c in CELLS if any(s in c.name for s in EVENT_LOOP_SERVERS)]


@pytest.mark.parametrize("cell", EVENT_LOOP_CELLS, ids=[c.name for c in EVENT_LOOP_CELLS])
def test_five_sync_sleeps_overlap(cell: Cell, running: Callable[[Server], Server]) -> None:
    server = running(serve(cell, "tests.apps.conformance:app"))
    with ThreadPoolExecutor(5) as pool:
        stamps = list(pool.map(lambda _: httpx.get(server.url + "/api/sleep?seconds=0.2", timeout=30).json(), range(5)))
    latest_start = max(s["start"] for s in stamps)
    earliest_end = min(s["end"] for s in stamps)
    assert latest_start < earliest_end, stamps
