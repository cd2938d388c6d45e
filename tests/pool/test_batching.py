"""Batches really form under concurrency, stay within limits, and never stall a lone request."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from utilserve.errors import HTTPError
from utilserve.pool import ModelHandle
from utilserve.pool.batcher import Batcher

from ..support.models.thread import echo, seen
from ..support.pool import WAIT_S


def test_concurrent_callers_form_batches_within_the_limit() -> None:
    model = echo(max_batch_size=8, cost_s=0.005)
    barrier = threading.Barrier(64)

    def call(x: int) -> int:
        barrier.wait(WAIT_S)
        return handle.predict({"x": x}).x

    with ModelHandle(model) as handle, ThreadPoolExecutor(64) as callers:
        answers = list(callers.map(call, range(64)))

    assert answers == list(range(64))
    sizes = [len(batch) for batch in model.batches]
    assert sorted(seen(model)) == list(range(64))
    assert max(sizes) <= 8
    assert max(sizes) > 1


def test_several_workers_share_the_load_without_exceeding_the_limit() -> None:
    model = echo(max_batch_size=4, cost_s=0.01)
    with ModelHandle(model, workers=2) as handle, ThreadPoolExecutor(32) as callers:
        answers = list(callers.map(lambda x: handle.predict({"x": x}).x, range(32)))
    assert answers == list(range(32))
    assert max(len(batch) for batch in model.batches) <= 4
    assert len(model.threads) == 2


def test_a_lone_request_to_an_idle_pool_is_not_held_for_max_wait() -> None:
    model = echo(max_wait_ms=200)
    with ModelHandle(model) as handle:
        for x in range(5):
            began = time.monotonic()
            assert handle.predict({"x": x}).x == x
            assert time.monotonic() - began < 0.1
        with ThreadPoolExecutor(16) as callers:
            list(callers.map(lambda x: handle.predict({"x": x}), range(16)))
        began = time.monotonic()
        handle.predict({"x": 99})
        assert time.monotonic() - began < 0.1


def test_callers_in_a_closed_loop_keep_batching_together() -> None:
    """Callers that return together after each batch are batched together again."""
    model = echo(max_batch_size=8, max_wait_ms=5, cost_s=0.02)

    def loop(x: int) -> None:
        for _ in range(8):
            assert handle.predict({"x": x}).x == x

    with ModelHandle(model) as handle, ThreadPoolExecutor(4) as callers:
        list(callers.map(loop, range(4)))
    sizes = [len(batch) for batch in model.batches]
    assert max(sizes) == 4
    assert statistics.mean(sizes) > 2


def test_max_wait_counts_from_the_first_item_not_the_latest() -> None:
    # idle_gap_ms above max_wait_ms leaves only the max_wait deadline to end a batch
    batcher = Batcher("trickle", max_batch_size=16, max_wait_ms=100, max_queue=64, idle_gap_ms=1000)
    dispatched: list[tuple[float, list[int]]] = []

    def worker() -> None:
        while (batch := batcher.next_batch()) is not None:
            dispatched.append((time.monotonic(), [item.payload for item in batch]))
            batcher.finish(batch, [item.payload for item in batch])

    thread = threading.Thread(target=worker)
    thread.start()
    first_sent = time.monotonic()
    futures = []
    for x in range(10):
        futures.append(batcher.submit(x, time.monotonic() + WAIT_S))
        time.sleep(0.03)
    assert [future.result(WAIT_S) for future in futures] == list(range(10))
    batcher.close(HTTPError(503))
    thread.join(WAIT_S)

    went_at, first_batch = dispatched[0]
    assert went_at - first_sent >= 0.1
    assert first_batch == list(range(len(first_batch)))
    assert 2 <= len(first_batch) < 10
    assert sorted(x for _, batch in dispatched for x in batch) == list(range(10))


def test_a_full_batch_goes_without_waiting() -> None:
    batcher = Batcher("full", max_batch_size=4, max_wait_ms=60_000, max_queue=8, idle_gap_ms=60_000)
    futures = [batcher.submit(x, time.monotonic() + WAIT_S) for x in range(6)]
    began = time.monotonic()
    batch = batcher.next_batch()
    assert batch is not None
    assert time.monotonic() - began < WAIT_S
    assert [item.payload for item in batch] == [0, 1, 2, 3]
    batcher.finish(batch, [item.payload * 10 for item in batch])
    assert [future.result(0) for future in futures[:4]] == [0, 10, 20, 30]
    assert not futures[4].done()
    batcher.close(HTTPError(503))
    refused = futures[4].exception(0)
    assert isinstance(refused, HTTPError) and refused.status == 503


def test_full_batch_takes_only_a_full_batch_and_never_waits() -> None:
    """What a process-pool worker takes before answering the last batch: a full one, or nothing."""
    batcher = Batcher("early", max_batch_size=3, max_wait_ms=0.001, max_queue=8, idle_gap_ms=0.001)
    futures = [batcher.submit(x, time.monotonic() + WAIT_S) for x in range(5)]
    assert [item.payload for item in batcher.full_batch()] == [0, 1, 2]
    time.sleep(0.01)
    assert batcher.full_batch() == [], "two queued items are due (max_wait passed) but not a full batch"
    late = batcher.submit(9, time.monotonic() - 1)
    batch = batcher.full_batch()
    assert [item.payload for item in batch] == [3, 4], "three queued: taken, less the one past its deadline"
    assert isinstance(late.exception(0), HTTPError) and late.exception(0).status == 504
    assert not any(future.done() for future in futures)
    batcher.close(HTTPError(503))


def test_take_due_answers_at_once_with_the_batch_or_how_long_to_wait() -> None:
    """What a process-pool worker polls: never blocks; the same rules as ``next_batch``."""
    batcher = Batcher("polled", max_batch_size=4, max_wait_ms=50, max_queue=8, idle_gap_ms=50)
    assert batcher.take_due() == ([], None), "nothing queued: nothing to wait for"
    first = batcher.submit(1, time.monotonic() + WAIT_S)
    batch, wait = batcher.take_due()
    assert batch == [] and wait is not None and 0 < wait <= 0.05, "the first item waits for company, at most the gap"
    time.sleep(wait)
    batch, _ = batcher.take_due()
    assert batch is not None and [item.payload for item in batch] == [1]
    batcher.finish(batch, [10])
    lone = batcher.submit(6, time.monotonic() + WAIT_S)
    batch, wait = batcher.take_due()
    assert batch is not None and [item.payload for item in batch] == [6] and wait == 0.0, "a lone request goes at once"
    batcher.finish(batch, [60])
    assert (first.result(0), lone.result(0)) == (10, 60)
    futures = [batcher.submit(x, time.monotonic() + WAIT_S) for x in (2, 3)]
    batch, wait = batcher.take_due()
    assert batch == [] and wait is not None and 0 < wait <= 0.05, "two items after a lone one gather first"
    futures.append(batcher.submit(4, time.monotonic() + WAIT_S))
    futures.append(batcher.submit(5, time.monotonic() + WAIT_S))
    batch, wait = batcher.take_due()
    assert batch is not None and [item.payload for item in batch] == [2, 3, 4, 5], "a full batch goes at once"
    batcher.finish(batch, [20, 30, 40, 50])
    assert [future.result(0) for future in futures] == [20, 30, 40, 50]
    batcher.close(HTTPError(503))
    assert batcher.take_due() == (None, None), "closed"
