"""Loading, readiness, shutdown and async use of the thread pool."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

import pytest

from utilserve.errors import HTTPError
from utilserve.pool import ModelHandle

from ..support.models.thread import Echo, echo
from ..support.pool import WAIT_S, outcome


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


class BrokenLoad(Echo):
    def setup(self) -> None:
        raise OSError("weights.bin not found")


def test_not_ready_while_setup_runs_then_ready() -> None:
    model = slow_load()
    handle = ModelHandle(model, workers=2)
    handle.start()
    try:
        assert not handle.ready
        assert handle.wait_ready(0.05) is False
        error = outcome(handle.predict, {"x": 1})
        assert isinstance(error, HTTPError) and error.status == 503
        assert error.headers == {"Retry-After": "1"}
        model.loading.set()
        assert handle.wait_ready(WAIT_S)
        assert handle.ready
        assert handle.predict({"x": 1}).x == 1
    finally:
        handle.stop()
    assert len(model.loaded_in) == 2
    assert all(name.startswith("utilserve-SlowLoad-") for name in model.loaded_in)


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
