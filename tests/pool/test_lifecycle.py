"""Loading, readiness, shutdown and async use of the thread pool."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest

from utilserve.concurrency import STOPS
from utilserve.errors import HTTPError
from utilserve.pool import ModelHandle

from ..support.models.thread import Echo, echo
from ..support.pool import WAIT_S, outcome
from ..support.processes import wait_until


class SlowLoad(Echo):
    loading: ClassVar[threading.Event]
    loaded_in: ClassVar[list[str]]
    torn_down_in: ClassVar[list[str]]

    def setup(self) -> None:
        type(self).loaded_in.append(threading.current_thread().name)
        assert type(self).loading.wait(WAIT_S), "test never let setup finish"

    def teardown(self) -> None:
        type(self).torn_down_in.append(threading.current_thread().name)


def slow_load(**settings: object) -> type[SlowLoad]:
    return echo(SlowLoad, loading=threading.Event(), loaded_in=[], torn_down_in=[], **settings)  # type: ignore[return-value]  # a SlowLoad handle


class Masked(Echo):
    masks: ClassVar[list[set[signal.Signals]]] = []

    def setup(self) -> None:
        type(self).masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, ()))


class BrokenLoad(Echo):
    def setup(self) -> None:
        raise OSError("weights.bin not found")


def test_an_item_waits_while_setup_runs_within_its_deadline() -> None:
    model = slow_load()
    handle = ModelHandle(model, workers=2)
    handle.start()
    try:
        assert not handle.ready
        assert handle.wait_ready(0.05) is False
        error = outcome(handle.predict, {"x": 1}, timeout=0.1)
        assert isinstance(error, HTTPError) and error.status == 503
        assert error.message == "model SlowLoad is not ready (still loading after 0.1 s)"
        assert error.headers == {"Retry-After": "1"}
        with ThreadPoolExecutor(1) as waiting:
            early = waiting.submit(handle.predict, {"x": 1})
            assert not early.done()
            model.loading.set()
            assert early.result(WAIT_S).x == 1
        assert handle.ready
    finally:
        handle.stop()
    assert len(model.loaded_in) == 2
    assert all(name.startswith("utilserve-SlowLoad-") for name in model.loaded_in)


def test_an_awaited_item_waits_while_setup_runs_within_its_deadline() -> None:
    model = slow_load()

    async def scenario(handle: ModelHandle) -> None:
        with pytest.raises(HTTPError) as late:
            await handle.apredict({"x": 2}, timeout=0.1)
        assert late.value.message == "model SlowLoad is not ready (still loading after 0.1 s)"
        early = asyncio.ensure_future(handle.apredict({"x": 3}))
        await asyncio.sleep(0.1)
        assert not early.done()
        model.loading.set()
        assert (await early).x == 3

    handle = ModelHandle(model)
    handle.start()
    try:
        asyncio.run(scenario(handle))
    finally:
        handle.stop()


def test_items_waiting_for_a_pool_that_stops_get_503_without_waiting_out_their_deadline() -> None:
    model = slow_load()
    handle = ModelHandle(model)
    handle.start()
    with ThreadPoolExecutor(2) as threads:
        waiting = threads.submit(outcome, handle.predict, {"x": 1}, timeout=600)
        assert not waiting.done()
        stopping = threads.submit(handle.stop)
        error = waiting.result(WAIT_S)
        model.loading.set()
        stopping.result(WAIT_S)
    assert isinstance(error, HTTPError) and error.status == 503, error


def test_no_more_items_wait_for_a_loading_pool_than_its_queue_holds() -> None:
    model = slow_load(max_queue=2)
    handle = ModelHandle(model)
    handle.start()
    try:
        with ThreadPoolExecutor(2) as threads:
            waiting = [threads.submit(handle.predict, {"x": x}) for x in (1, 2)]
            wait_until(lambda: handle._loading is not None and handle._loading._waiting == 2, "two waiting items")
            refused = outcome(handle.predict, {"x": 3})
            model.loading.set()
            assert [item.result(WAIT_S).x for item in waiting] == [1, 2]
    finally:
        handle.stop()
    assert isinstance(refused, HTTPError) and refused.status == 503 and refused.headers == {"Retry-After": "1"}
    assert refused.message == "model SlowLoad is overloaded: 2 requests already wait for it"


def test_a_failed_setup_keeps_the_pool_unready_and_says_why() -> None:
    handle = ModelHandle(echo(BrokenLoad))
    handle.start()
    try:
        with pytest.raises(RuntimeError, match=r"setup failed: OSError: weights\.bin not found"):
            handle.wait_ready(WAIT_S)
        assert not handle.ready
        assert isinstance(handle.error, OSError)
        error = outcome(handle.predict, {"x": 1})
        assert isinstance(error, HTTPError) and error.status == 503
        assert error.message == "model BrokenLoad is not ready (setup failed: OSError)"
    finally:
        handle.stop()


def test_stop_tears_down_every_worker_in_its_own_thread() -> None:
    model = slow_load()
    model.loading.set()
    with ModelHandle(model, workers=3) as handle:
        assert handle.predict({"x": 1}).x == 1
        assert model.torn_down_in == []
    assert sorted(model.torn_down_in) == sorted(model.loaded_in)
    assert len(set(model.torn_down_in)) == 3
    assert not handle.ready


def test_stop_answers_queued_items_503_and_lets_the_running_batch_finish() -> None:
    model = echo()

    async def scenario(handle: ModelHandle) -> None:
        running = asyncio.create_task(handle.apredict({"x": 0, "block": True}))
        assert await asyncio.to_thread(model.started.wait, WAIT_S)
        queued = [asyncio.create_task(handle.apredict({"x": x})) for x in (1, 2, 3)]
        await asyncio.sleep(0)
        stopping = asyncio.create_task(asyncio.to_thread(handle.stop, WAIT_S))
        for error in await asyncio.gather(*queued, return_exceptions=True):
            assert isinstance(error, HTTPError) and error.status == 503
            assert error.headers == {"Retry-After": "1"}
        model.gate.set()
        assert (await running).x == 0
        await stopping

    handle = ModelHandle(model)
    handle.start()
    handle.wait_ready(WAIT_S)
    asyncio.run(scenario(handle))
    assert [x for batch in model.batches for x in batch] == [0]
    error = outcome(handle.predict, {"x": 9})
    assert isinstance(error, HTTPError) and error.status == 503


def test_a_stopped_handle_can_start_again() -> None:
    handle = ModelHandle(echo())
    for x in range(2):
        with handle:
            assert handle.predict({"x": x}).x == x


def test_apredict_serves_many_concurrent_tasks() -> None:
    model = echo(max_batch_size=16, cost_s=0.002)

    async def scenario(handle: ModelHandle) -> list[int]:
        answers = await asyncio.gather(*(handle.apredict({"x": x}) for x in range(300)))
        return [answer.x for answer in answers]

    with ModelHandle(model) as handle:
        assert asyncio.run(scenario(handle)) == list(range(300))
    assert 1 < max(len(batch) for batch in model.batches) <= 16


def test_apredict_times_out_with_504() -> None:
    model = echo()

    async def scenario(handle: ModelHandle) -> HTTPError:
        blocker = asyncio.create_task(handle.apredict({"x": 0, "block": True}))
        assert await asyncio.to_thread(model.started.wait, WAIT_S)
        with pytest.raises(HTTPError) as caught:
            await handle.apredict({"x": 1}, timeout=0.1)
        model.gate.set()
        await blocker
        return caught.value

    with ModelHandle(model) as handle:
        error = asyncio.run(scenario(handle))
    assert error.status == 504
    assert error.message == "model Echo did not answer within 0.1 s"


@pytest.mark.parametrize("uwsgi", [False, True], ids=["elsewhere", "under-uwsgi"])
def test_a_worker_blocks_only_the_stop_signals_and_only_under_uwsgi(
    uwsgi: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uWSGI exits on the thread that took a stop signal; the processes a model starts inherit its thread's mask."""
    if uwsgi:
        monkeypatch.setitem(sys.modules, "uwsgi", types.ModuleType("uwsgi"))
    Masked.masks.clear()
    with ModelHandle(Masked):
        pass
    assert Masked.masks == [set(STOPS) if uwsgi else set()]
