"""Streaming models on the process pool, driven from this process: real model workers, chunks over the wire.

The model (tests/support/models/streaming.py) logs each step's items to
``$MODEL_LOG``; an item runs on while its ``until`` file is missing, so a
test keeps it active without timing. No test asserts a duration.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from utilserve import HTTPError, Model, ModelHandle
from utilserve.pool.process import ProcessPool
from utilserve.pool.stream import END

from ..support.models.streaming import Count, Counted, Counting, Impatient, OneAtATime, Wide, steps
from ..support.processes import WAIT_S

Start = Callable[[type[Model]], ModelHandle]


def inner(handle: ModelHandle) -> ProcessPool:
    process_pool = handle._pool
    assert isinstance(process_pool, ProcessPool)
    return process_pool


def test_an_item_that_expires_while_queued_ends_its_stream_with_the_worker_504(
    start_model: Start, tmp_path: Path
) -> None:
    handle = start_model(OneAtATime)
    release = tmp_path / "release-a"
    busy = handle.stream({"tag": "a", "n": 1, "until": str(release)})
    assert next(busy).i == 0
    late = inner(handle).stream(Count(tag="late"), 0.2)
    assert inner(handle)._supervisor().workers.sync(handle.name, WAIT_S), "the worker queued it"
    time.sleep(0.4)  # past its deadline, still queued behind a
    release.touch()
    assert list(busy)
    with pytest.raises(HTTPError) as raised:
        late.next(WAIT_S)
    assert (raised.value.status, raised.value.message) == (504, f"model {handle.name}: deadline passed while queued")


def test_a_reader_that_reads_slowly_but_steadily_is_never_taken_for_stalled(start_model: Start) -> None:
    """One output per 0.2 s, slower than half a buffer per ``timeout_s``: each take still tells the worker."""
    handle = start_model(Impatient)
    taken = []
    for output in handle.stream({"tag": "steady", "n": 24}):
        taken.append(output.i)
        time.sleep(0.2)  # the reader's pace, not a measurement
    assert taken == list(range(24))


def test_a_worker_killed_mid_stream_ends_it_with_503(start_model: Start, tmp_path: Path) -> None:
    handle = start_model(Counting)
    (worker,) = inner(handle).worker_pids
    stream = handle.stream({"tag": "a", "n": 1, "until": str(tmp_path / "never")})
    assert next(stream).i == 0
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(HTTPError) as raised:
        for _ in stream:  # what the worker sent before it died, then the error
            pass
    assert (raised.value.status, raised.value.headers) == (503, {"Retry-After": "1"})
    assert raised.value.message == (
        f"model {handle.name}: its worker process {worker} went away while running this request; retry"
    )


def test_64_concurrent_streams_each_get_exactly_their_own_outputs_in_order(start_model: Start, model_log: Path) -> None:
    handle = start_model(Wide)
    count, length = 64, 50

    async def read(tag: str) -> list[tuple[str, int]]:
        return [(output.tag, output.i) async for output in handle.astream({"tag": tag, "n": length})]

    async def everyone() -> list[list[tuple[str, int]]]:
        return await asyncio.gather(*(read(f"s{k}") for k in range(count)))

    received = asyncio.run(everyone())
    assert received == [[(f"s{k}", i) for i in range(length)] for k in range(count)]
    assert max(len(step) for step in steps(model_log)) > 1, "the streams shared steps"


def test_streams_read_from_threads_each_get_their_own_outputs(start_model: Start) -> None:
    handle = start_model(Wide)
    with ThreadPoolExecutor(32) as threads:
        received = list(threads.map(lambda k: [o.i for o in handle.stream({"tag": f"t{k}", "n": 50})], range(32)))
    assert received == [list(range(50))] * 32


def test_streams_read_in_turn_share_one_connection_without_mixing(start_model: Start) -> None:
    handle = start_model(Wide)
    streams = [inner(handle).stream(Count(tag=f"t{k}", n=30), WAIT_S) for k in range(16)]
    outputs: dict[str, list[int]] = {f"t{k}": [] for k in range(16)}
    for _ in range(30):  # a round over every stream at a time: each waits for the others' readers
        for stream in streams:
            output = stream.next(WAIT_S)
            outputs[output.tag].append(output.i)
    assert all(stream.next(WAIT_S) is END for stream in streams)
    assert outputs == {f"t{k}": list(range(30)) for k in range(16)}


async def _read_all(outputs: AsyncIterator[Counted]) -> list[int]:
    return [output.i async for output in outputs]
