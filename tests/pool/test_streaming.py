"""Streaming models on the in-process pool kinds: continuous batching, errors, cancellation, slow readers.

Each scenario that both pool kinds promise runs on each (``POOL_KINDS``);
what only one kind has is tested apart (the process pool's wire, in
test_process_streaming.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from utilserve import EventStream, HTTPError, Model, ModelHandle
from utilserve.events import HEARTBEAT
from utilserve.streams import sync_stream

from ..support.models.streaming import Count, Counted, Counting, OneAtATime, started, steps
from ..support.models.thread import Doubling
from ..support.pool import settled
from .conftest import POOL_KINDS

Start = Callable[[type[Model]], ModelHandle]


@pytest.fixture
def counting(model_log: Path) -> Iterator[ModelHandle]:
    with ModelHandle(Counting) as handle:
        yield handle


@POOL_KINDS
def test_outputs_arrive_in_order_and_the_stream_ends(start_model: Start) -> None:
    handle = start_model(Counting)
    assert [output.i for output in handle.stream({"tag": "a", "n": 40})] == list(range(40))


@POOL_KINDS
def test_astream_yields_the_same_outputs(start_model: Start) -> None:
    handle = start_model(Counting)

    async def read() -> list[Any]:
        return [output async for output in handle.astream(Count(tag="a", n=3))]

    assert asyncio.run(read()) == [Counted(tag="a", i=i) for i in range(3)]


@POOL_KINDS
def test_an_item_that_starts_while_another_streams_joins_its_steps(
    start_model: Start, tmp_path: Path, model_log: Path
) -> None:
    handle = start_model(Counting)
    release = tmp_path / "release-a"
    first = handle.stream({"tag": "a", "n": 1, "until": str(release)})
    assert next(first).i == 0
    assert [output.i for output in handle.stream({"tag": "b", "n": 3})] == [0, 1, 2]  # a is still running
    release.touch()
    assert list(first)  # a ends once released
    assert ["a", "b"] in [sorted(step) for step in steps(model_log)]


@POOL_KINDS
def test_an_error_stays_with_its_item(start_model: Start, tmp_path: Path) -> None:
    handle = start_model(Counting)
    release = tmp_path / "release-b"
    good = handle.stream({"tag": "b", "n": 4, "until": str(release)})
    assert next(good).i == 0
    bad = handle.stream({"tag": "a", "n": 5, "fail_at": 2})
    assert [next(bad).i, next(bad).i] == [0, 1]
    with pytest.raises(HTTPError) as raised:
        next(bad)
    assert (raised.value.status, raised.value.message) == (400, f"model {handle.name}: Miscounted: a failed at 2")
    release.touch()
    assert [output.i for output in good][-1] >= 3


@POOL_KINDS
def test_a_closed_stream_leaves_at_the_next_step(start_model: Start, tmp_path: Path, model_log: Path) -> None:
    handle = start_model(Counting)
    release = tmp_path / "release-b"
    gone = handle.stream({"tag": "a", "n": 1000})
    assert next(gone).i == 0
    stays = handle.stream({"tag": "b", "n": 1, "until": str(release)})
    assert next(stays).i == 0
    gone.close()
    settled(handle)
    closed_at = len(steps(model_log))
    next(stays)
    while len(steps(model_log)) == closed_at:  # b may have outputs in hand: reading makes it step again
        next(stays)
    release.touch()
    list(stays)
    after = steps(model_log)[closed_at:]
    assert sum("a" in step for step in after) <= 1, after  # the step under way when it closed, at most
    assert after and "a" not in after[-1]


@POOL_KINDS
def test_a_queued_item_whose_reader_left_never_starts(start_model: Start, tmp_path: Path, model_log: Path) -> None:
    handle = start_model(OneAtATime)
    release = tmp_path / "release-a"

    async def scenario() -> list[int]:
        busy = handle.astream({"tag": "a", "n": 1, "until": str(release)})
        assert (await anext(busy)).i == 0
        queued = asyncio.create_task(anext(handle.astream({"tag": "b"})))
        await asyncio.sleep(0)  # b is queued: a ready pool takes it without suspending
        queued.cancel()  # its reader leaves (the client went away)
        expired = handle.astream({"tag": "c"}, timeout=0.2)
        with pytest.raises(HTTPError) as raised:
            await anext(expired)  # queued behind a, which holds the only place
        assert raised.value.status == 504
        waiting = asyncio.create_task(_read_all(handle.astream({"tag": "d"})))
        await asyncio.sleep(0)
        release.touch()
        assert [output.i async for output in busy]
        return await waiting

    assert asyncio.run(scenario()) == [0, 1, 2]
    assert started(model_log) == ["a", "d"]


def test_a_reader_whose_event_loop_closed_leaves_the_others_streaming(counting: ModelHandle, tmp_path: Path) -> None:
    release = tmp_path / "release"
    loop = asyncio.new_event_loop()
    gone = counting.astream({"tag": "gone", "n": 1, "until": str(release)})
    assert loop.run_until_complete(anext(gone)).i == 0
    awaiting = loop.create_task(anext(gone))
    loop.run_until_complete(asyncio.sleep(0))  # it awaits the next output
    awaiting.cancel()
    loop.close()  # without running the cancellation: the stream still holds the loop's waiter
    assert [output.i for output in counting.stream({"tag": "other", "n": 3})] == [0, 1, 2]
    release.touch()


@POOL_KINDS
def test_a_slow_reader_pauses_only_its_own_item(start_model: Start, model_log: Path) -> None:
    handle = start_model(Counting)
    slow = handle.stream({"tag": "slow", "n": 100})
    assert next(slow).i == 0
    assert [output.i for output in handle.stream({"tag": "fast", "n": 60})] == list(range(60))
    paused = [step for step in steps(model_log) if "fast" in step and "slow" not in step]
    assert paused, "the fast item never stepped alone while the slow reader's buffer was full"
    assert [output.i for output in slow] == list(range(1, 100))


def test_a_full_queue_answers_503(tmp_path: Path, model_log: Path) -> None:
    release = tmp_path / "release"

    async def scenario(handle: ModelHandle) -> tuple[int, list[int]]:
        busy = handle.astream({"tag": "a", "n": 1, "until": str(release)})
        assert (await anext(busy)).i == 0
        queued = asyncio.create_task(_read_all(handle.astream({"tag": "b"})))
        await asyncio.sleep(0)
        with pytest.raises(HTTPError) as raised:
            await anext(handle.astream({"tag": "c"}))
        release.touch()
        assert [output.i async for output in busy]
        return raised.value.status, await queued

    with ModelHandle(type("Small", (Counting,), {"max_batch_size": 1, "max_queue": 1})) as handle:
        assert asyncio.run(scenario(handle)) == (503, [0, 1, 2])


async def _read_all(outputs: AsyncIterator[Counted]) -> list[int]:
    return [output.i async for output in outputs]


def test_invalid_input_is_a_422_at_the_first_read(counting: ModelHandle) -> None:
    with pytest.raises(HTTPError) as raised:
        next(counting.stream({"n": 3}))
    assert raised.value.status == 422


def test_streaming_and_one_shot_calls_are_not_mixed(counting: ModelHandle) -> None:
    with pytest.raises(TypeError, match="model Counting streams: call stream"):
        counting.predict({"tag": "a"})
    with ModelHandle(Doubling) as doubling, pytest.raises(TypeError, match="answers once: call predict"):
        next(doubling.stream({"x": 1}))


def test_a_streaming_model_is_checked_where_it_is_declared() -> None:
    with pytest.raises(TypeError, match="implements both predict and step"):
        type("Both", (Counting,), {"predict": lambda self, batch: batch})
    with pytest.raises(TypeError, match="does not implement done"):

        class NoDone(Model):
            Input = Output = Counted

            def start(self, item: Any) -> Any:
                return item

            def step(self, states: list[Any]) -> list[Any]:
                return states


def test_an_event_stream_of_outputs_sends_heartbeats_with_no_thread_of_its_own(counting: ModelHandle) -> None:
    """On a sync server a generator needs a thread to wait with a bound; a model's outputs wait themselves."""
    response = sync_stream(EventStream(counting.stream({"tag": "a", "n": 3, "step_ms": 30}), ping_s=0.005), "test")
    assert response.chunks is not None and isinstance(response.chunks, Iterator)
    chunks = []
    for chunk in response.chunks:
        chunks.append(chunk)
        assert not [t.name for t in threading.enumerate() if t.name == "utilserve-events"]
    events = [chunk for chunk in chunks if chunk != HEARTBEAT]
    assert events == [b'data: {"tag":"a","i":%d}\n\n' % i for i in range(3)]  # and no error event after them
    assert HEARTBEAT in chunks[chunks.index(events[0]) : chunks.index(events[1])]
