"""Admission: a full queue answers 503 at once, an expired or cancelled item never reaches the model."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from utilserve.errors import HTTPError
from utilserve.pool import ModelHandle
from utilserve.pool.batcher import Batcher

from ..support.models.thread import EchoOut, echo, seen
from ..support.pool import WAIT_S, outcome


def test_a_burst_beyond_max_queue_gets_503_with_retry_after_and_the_pool_recovers() -> None:
    model = echo(max_queue=8, max_batch_size=4, cost_s=0.05)
    barrier = threading.Barrier(100)

    def call(x: int) -> EchoOut | HTTPError:
        barrier.wait(WAIT_S)
        return outcome(handle.predict, {"x": x})

    with ModelHandle(model) as handle:
        with ThreadPoolExecutor(100) as callers:
            results = list(callers.map(call, range(100)))
        served = {x: r for x, r in enumerate(results) if isinstance(r, EchoOut)}
        refused = [r for r in results if isinstance(r, HTTPError)]
        assert served and refused
        assert all(r.x == x for x, r in served.items())
        assert all(r.status == 503 and r.headers == {"Retry-After": "1"} for r in refused)
        assert "overloaded" in refused[0].message
        assert sorted(seen(model)) == sorted(served)
        assert handle.predict({"x": 1000}).x == 1000


def test_a_deadline_that_passes_in_the_queue_answers_504_and_the_model_never_sees_it() -> None:
    model = echo()
    with ModelHandle(model) as handle, ThreadPoolExecutor(1) as background:
        blocker = background.submit(handle.predict, {"x": 0, "block": True})
        assert model.started.wait(WAIT_S)
        error = outcome(handle.predict, {"x": 7}, timeout=0.2)
        model.gate.set()
        assert blocker.result(WAIT_S).x == 0
        assert handle.predict({"x": 8}).x == 8
    assert isinstance(error, HTTPError) and error.status == 504
    assert 7 not in seen(model)


def test_an_expired_item_is_dropped_before_batching_with_504() -> None:
    batcher = Batcher("expiry", max_batch_size=8, max_wait_ms=5, max_queue=8)
    late = batcher.submit("late", time.monotonic() - 1)
    fresh = batcher.submit("fresh", time.monotonic() + WAIT_S)
    batch = batcher.next_batch()
    assert batch is not None and [item.payload for item in batch] == ["fresh"]
    error = late.exception(0)
    assert isinstance(error, HTTPError) and error.status == 504
    batcher.finish(batch, ["done"])
    assert fresh.result(0) == "done"


def test_a_cancelled_item_leaves_the_queue_and_frees_its_slot() -> None:
    batcher = Batcher("cancel", max_batch_size=8, max_wait_ms=5, max_queue=1)
    gone = batcher.submit("gone", time.monotonic() + WAIT_S)
    with pytest.raises(HTTPError) as full:
        batcher.submit("refused", time.monotonic() + WAIT_S)
    assert full.value.status == 503 and full.value.headers["Retry-After"] == "1"
    assert gone.cancel()
    kept = batcher.submit("kept", time.monotonic() + WAIT_S)
    batch = batcher.next_batch()
    assert batch is not None and [item.payload for item in batch] == ["kept"]
    assert not kept.cancel(), "a taken item can no longer be cancelled"
    batcher.finish(batch, ["ok"])
    assert kept.result(0) == "ok"


def test_a_cancelled_async_caller_drops_its_queued_item() -> None:
    model = echo()

    async def scenario(handle: ModelHandle) -> None:
        blocker = asyncio.create_task(handle.apredict({"x": 0, "block": True}))
        assert await asyncio.to_thread(model.started.wait, WAIT_S)
        waiting = asyncio.create_task(handle.apredict({"x": 5}))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        model.gate.set()
        assert (await blocker).x == 0
        assert (await handle.apredict({"x": 6})).x == 6

    with ModelHandle(model) as handle:
        asyncio.run(scenario(handle))
    assert 5 not in seen(model)


def test_submitting_to_a_pool_that_is_not_ready_answers_503() -> None:
    handle = ModelHandle(echo())
    error = outcome(handle.predict, {"x": 1})
    assert isinstance(error, HTTPError) and error.status == 503
    assert error.message == "model Echo is not ready"
    assert error.headers == {"Retry-After": "1"}
