"""What the pools tell about their work: each batch's log line names its requests, and the metrics add up.

The process pool's batches run in its model workers, whose log goes to the
stderr they inherit (the test's, captured by ``capfd``), and whose metrics
go to the test's own directory (``metrics_dir``), which they inherit too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from utilserve import HTTPError, Model, ModelHandle
from utilserve.pool.process import ProcessPool
from utilserve.telemetry import context
from utilserve.telemetry.context import Origin
from utilserve.telemetry.metrics import exposition
from utilserve.telemetry.tally import tally

from ..support.models.log import events
from ..support.models.process import Echo, Item, Narrow
from ..support.models.streaming import Count, Counting
from ..support.processes import WAIT_S, Processes, wait_until
from .conftest import POOL_KINDS

BATCH_LINE = re.compile(r"model (\S+): batch of (\d+): (.*)$")


def metric(sample: str, **labels: str) -> float:
    """The value of one sample in ``/metrics`` now (0 when absent), with this process's counts written first, as
    the endpoint writes them."""
    tally.write()
    body, _ = exposition()
    for family in text_string_to_metric_families(body.decode()):
        for found in family.samples:
            if found.name == sample and labels.items() <= found.labels.items():
                return float(found.value)
    return 0.0


def items(model: str, outcome: str) -> float:
    return metric("utilserve_model_items_total", model=model, outcome=outcome)


def predict_as(handle: ModelHandle, request_id: str, item: Item, timeout: float | None = None) -> object:
    """``handle.predict`` in a request with this id, as the HTTP handler would run it."""
    token = context.enter(Origin(request_id, {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}))
    try:
        return handle.predict(item, timeout)
    finally:
        context.leave(token)


def batch_lines(handle: ModelHandle, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> list[str]:
    """The batch log lines of ``handle``'s model: from this process's log, or its worker processes' stderr."""
    if isinstance(handle._pool, ProcessPool):
        text = capfd.readouterr().err.splitlines()
    else:
        text = [record.getMessage() for record in caplog.records if record.name == "utilserve.batch"]
    return [line for line in text if (found := BATCH_LINE.search(line)) and found[1] == handle.name]


@POOL_KINDS
def test_each_batch_log_line_names_the_request_ids_of_its_items(
    metrics_dir: Path,
    start_model: Callable[[type[Model]], ModelHandle],
    processes: Processes,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="utilserve.batch")
    handle = start_model(Echo)
    gate = processes.log.parent / "gate"
    with ThreadPoolExecutor(8) as executor:
        first = executor.submit(predict_as, handle, "req-0", Item(x=0, hold=str(gate)))
        wait_until(lambda: events(processes.log, event="batch"), "the first batch to run")
        rest = [executor.submit(predict_as, handle, f"req-{x}", Item(x=x)) for x in range(1, 8)]
        wait_until(lambda: metric("utilserve_model_queue_size", model=handle.name) == 7, "7 items to queue")
        gate.touch()
        for future in [first, *rest]:
            future.result(WAIT_S)
    batches = [event["xs"] for event in events(processes.log, event="batch")]
    lines = [BATCH_LINE.search(line) for line in batch_lines(handle, caplog, capfd)]
    logged = sorted((int(found[2]), sorted(found[3].split())) for found in lines if found)
    assert logged == sorted((len(xs), sorted(f"req-{x}" for x in xs)) for xs in batches)
    assert sorted(len(xs) for xs in batches) == [1, 7]  # the 7 that queued behind the first ran as one


@POOL_KINDS
def test_metrics_add_up_to_the_items_served(
    metrics_dir: Path, start_model: Callable[[type[Model]], ModelHandle]
) -> None:
    handle = start_model(Echo)
    assert metric("utilserve_model_ready", model=handle.name) == 1
    with ThreadPoolExecutor(8) as executor:
        list(executor.map(lambda x: handle.predict(Item(x=x)), range(20)))
    # a process pool's model worker counts its batches and writes them within WRITE_EVERY_S
    wait_until(lambda: metric("utilserve_model_batch_size_sum", model=handle.name) == 20, "the batches written")
    assert 1 <= metric("utilserve_model_batch_size_count", model=handle.name) <= 20
    assert metric("utilserve_model_batch_duration_seconds_count", model=handle.name) == metric(
        "utilserve_model_batch_size_count", model=handle.name
    )
    assert items(handle.name, "ok") == 20
    wait_until(lambda: metric("utilserve_model_queue_size", model=handle.name) == 0, "the queue written empty")
    handle.stop(WAIT_S)
    assert metric("utilserve_model_ready", model=handle.name) == 0


@POOL_KINDS
def test_a_full_queue_counts_rejected_and_a_passed_deadline_expired(
    metrics_dir: Path, start_model: Callable[[type[Model]], ModelHandle], processes: Processes
) -> None:
    handle = start_model(Narrow)
    gate = processes.log.parent / "gate"
    with ThreadPoolExecutor(4) as executor:
        running = executor.submit(handle.predict, Item(x=1, hold=str(gate)))
        wait_until(lambda: events(processes.log, event="batch"), "the first batch to run")
        with pytest.raises(HTTPError) as late:
            handle.predict(Item(x=2), timeout=0.2)
        queued = [executor.submit(handle.predict, Item(x=x)) for x in (3, 4)]
        wait_until(lambda: metric("utilserve_model_queue_size", model=handle.name) == 2, "2 items to queue")
        with pytest.raises(HTTPError) as full:
            handle.predict(Item(x=5))
        gate.touch()
        for future in [running, *queued]:
            future.result(WAIT_S)
    assert (late.value.status, full.value.status) == (504, 503)
    assert {outcome: items(handle.name, outcome) for outcome in ("ok", "rejected", "expired", "error")} == {
        "ok": 3,
        "rejected": 1,
        "expired": 1,
        "error": 0,
    }


@POOL_KINDS
def test_a_caller_that_goes_away_counts_cancelled(
    metrics_dir: Path, start_model: Callable[[type[Model]], ModelHandle], processes: Processes
) -> None:
    handle = start_model(Narrow)
    gate = processes.log.parent / "gate"

    async def leave_while_queued() -> None:
        running = asyncio.ensure_future(handle.apredict(Item(x=1, hold=str(gate))))
        while not events(processes.log, event="batch"):
            await asyncio.sleep(0.01)
        leaving = asyncio.ensure_future(handle.apredict(Item(x=2)))
        await asyncio.sleep(0.1)
        leaving.cancel()
        with suppress(asyncio.CancelledError):
            await leaving
        gate.touch()
        await running

    asyncio.run(leave_while_queued())
    assert (items(handle.name, "cancelled"), items(handle.name, "ok")) == (1, 1)


@POOL_KINDS
def test_a_streaming_models_log_names_the_items_that_join_its_steps(
    metrics_dir: Path,
    start_model: Callable[[type[Model]], ModelHandle],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="utilserve.batch")
    handle = start_model(Counting)
    token = context.enter(Origin("req-stream"))
    try:
        outputs = [output.i for output in handle.stream(Count(tag="a", n=3))]
    finally:
        context.leave(token)
    assert outputs == [0, 1, 2]
    if isinstance(handle._pool, ProcessPool):
        text = capfd.readouterr().err
    else:
        text = "\n".join(record.getMessage() for record in caplog.records if record.name == "utilserve.batch")
    assert f"model {handle.name}: 1 joined the steps (1 active): req-stream" in text
    assert items(handle.name, "ok") == 1
    wait_until(lambda: metric("utilserve_model_batch_size_count", model=handle.name) >= 3, "a count per step")


def test_a_killed_model_worker_counts_a_restart(
    metrics_dir: Path, start_model: Callable[[type[Model]], ModelHandle]
) -> None:
    handle = start_model(Echo)
    pool = handle._pool
    assert isinstance(pool, ProcessPool)
    (killed,) = pool.worker_pids
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: pool.ready and pool.worker_pids and pool.worker_pids != (killed,), "a new worker")
    assert metric("utilserve_model_worker_restarts_total", model=handle.name) == 1
    assert handle.predict(Item(x=1)).x == 1
    wait_until(lambda: metric("utilserve_model_ready", model=handle.name) == 1, "ready again")
