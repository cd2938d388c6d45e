"""The process pool driven from this process, its owner, and from forked children: real processes throughout.

``ModelHandle(..., pool="process")`` starts a supervisor and its model
workers; the models (tests/support/models/process.py) log what they see to
``$MODEL_LOG``, and an item's ``hold`` file keeps a worker busy until the
test creates it. Waits are generous and no test asserts a duration.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from utilserve import Model, Service
from utilserve.errors import HTTPError
from utilserve.pool import ModelHandle
from utilserve.pool.process import ProcessPool, codec, sockets

from ..support.models.log import events
from ..support.models.process import Blob, Blobs, Broken, Echo, Item, Measure, Narrow, Parts, Picky, Quitter
from ..support.processes import WAIT_S, Processes, alive, wait_until


def outcome(future: Any) -> Any:
    """The future's result, or the HTTPError it raised."""
    try:
        return future.result(WAIT_S)
    except HTTPError as error:
        return error


@pytest.fixture
def pool(request: pytest.FixtureRequest, processes: Processes) -> Iterator[Callable[..., ModelHandle]]:
    """Builds started process-pool handles named after the test; stops them all afterwards."""
    handles: list[ModelHandle] = []

    def make(model: type[Model], workers: int = 1, ready: bool = True) -> ModelHandle:
        name = f"{request.node.name[5:25]}-{len(handles)}"
        handle = ModelHandle(model, name=name, workers=workers, pool="process")
        handles.append(handle)
        handle.start()
        if ready:
            assert handle.wait_ready(WAIT_S)
            remember(handle)
        return handle

    def remember(handle: ModelHandle) -> None:
        process_pool = inner(handle)
        processes.note(process_pool.supervisor_pid, *process_pool.worker_pids)

    yield make
    for handle in handles:
        if handle.ready:
            remember(handle)
        handle.stop(WAIT_S)


def inner(handle: ModelHandle) -> ProcessPool:
    process_pool = handle._pool
    assert isinstance(process_pool, ProcessPool)
    return process_pool


def hold_worker(handle: ModelHandle, model_log: Path, hold: Path, x: int = -1) -> Any:
    """Submit an item that keeps its worker busy until ``hold`` exists; return its future once it runs."""
    future = inner(handle).submit(Item(x=x, hold=str(hold)), WAIT_S)
    wait_until(lambda: any(x in e["xs"] for e in events(model_log, event="batch")), "the held batch to start")
    return future


def _submit_from_child(handle: ModelHandle, count: int, ready: Any, results: Any) -> None:
    """In a forked child: send ``count`` items through the inherited pool, report what came back."""
    pid = os.getpid()
    futures = [inner(handle).submit(Item(x=pid * 100 + i, pid=pid), WAIT_S) for i in range(count)]
    assert inner(handle)._supervisor().workers.sync(handle.name, WAIT_S), (
        "the worker queued the items before this round trip"
    )
    ready.put(pid)
    results.put([(f.result(WAIT_S).x, pid) for f in futures])


def test_one_batch_mixes_items_from_two_forked_client_processes(pool: Any, model_log: Path, tmp_path: Path) -> None:
    handle = pool(Echo)
    hold = tmp_path / "hold"
    held = hold_worker(handle, model_log, hold)
    fork = multiprocessing.get_context("fork")
    ready, results = fork.Queue(), fork.Queue()
    children = [fork.Process(target=_submit_from_child, args=(handle, 8, ready, results)) for _ in range(2)]
    try:
        for child in children:
            child.start()
        pids = {ready.get(timeout=WAIT_S) for _ in children}
        hold.touch()
        answered = [results.get(timeout=WAIT_S) for _ in children]
    finally:
        for child in children:
            child.join(WAIT_S)
            if child.is_alive():
                child.kill()
    assert held.result(WAIT_S).x == -1
    assert sorted(x for batch in answered for x, _ in batch) == sorted(p * 100 + i for p in pids for i in range(8))
    mixed = [e for e in events(model_log, event="batch") if pids <= set(e["webs"])]
    assert mixed, events(model_log, event="batch")


def test_a_full_queue_answers_503_at_once_and_recovers(pool: Any, model_log: Path, tmp_path: Path) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, model_log, hold)
    queued = [inner(handle).submit(Item(x=i), WAIT_S) for i in range(2)]
    rejected = outcome(inner(handle).submit(Item(x=9), WAIT_S))
    hold.touch()
    assert isinstance(rejected, HTTPError) and rejected.status == 503, rejected
    assert rejected.message == f"model {handle.name} is overloaded: 2 requests already queued"
    assert rejected.headers == {"Retry-After": "1"}
    assert [outcome(f).x for f in (held, *queued)] == [-1, 0, 1]
    assert handle.predict({"x": 5}).x == 5


def test_a_deadline_passed_while_queued_is_504_and_never_reaches_the_model(
    pool: Any, model_log: Path, tmp_path: Path
) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, model_log, hold)
    late = inner(handle).submit(Item(x=77), 0.2)
    time.sleep(0.6)
    hold.touch()
    error = outcome(late)
    assert isinstance(error, HTTPError) and error.status == 504, error
    assert error.message == f"model {handle.name}: deadline passed while queued"
    assert outcome(held).x == -1
    assert handle.predict({"x": 3}).x == 3
    assert 77 not in [x for e in events(model_log, event="batch") for x in e["xs"]]


def test_item_errors_stay_with_their_item_and_batch_errors_map(pool: Any) -> None:
    handle = pool(Picky)
    futures = [inner(handle).submit(Item(x=x), WAIT_S) for x in (1, -2, 3, -4)]
    results = [outcome(f) for f in futures]
    assert [r.x for r in results[::2]] == [1, 3]
    assert [(r.status, r.message) for r in results[1::2]] == [
        (400, f"model {handle.name}: ValueError: -2 is negative"),
        (400, f"model {handle.name}: ValueError: -4 is negative"),
    ]
    whole = outcome(inner(handle).submit(Item(x=999), WAIT_S))
    assert (whole.status, whole.message) == (409, "999 is too big")
    assert handle.predict({"x": 4}).x == 4


def test_an_item_waits_while_a_slow_setup_runs_within_its_deadline(
    pool: Any, model_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "setup-gate"
    monkeypatch.setenv("SETUP_GATE", str(gate))
    handle = pool(Echo, workers=2, ready=False)
    assert not handle.ready
    assert handle.wait_ready(0.2) is False
    with pytest.raises(HTTPError) as late:
        handle.predict({"x": 1}, timeout=0.2)
    assert late.value.status == 503 and late.value.headers == {"Retry-After": "1"}
    assert late.value.message == f"model {handle.name} is not ready (still loading after 0.2 s)"
    with ThreadPoolExecutor(1) as waiting:
        early = waiting.submit(handle.predict, {"x": 1})
        time.sleep(0.2)
        assert not early.done()
        gate.touch()
        assert early.result(WAIT_S).x == 1
    assert handle.ready
    assert len(events(model_log, event="setup")) == 2


def test_a_failed_setup_keeps_the_pool_unready_and_says_why(pool: Any) -> None:
    handle = pool(Broken, ready=False)
    with pytest.raises(RuntimeError, match=r"setup failed: OSError: weights\.bin not found"):
        handle.wait_ready(WAIT_S)
    assert not handle.ready
    assert isinstance(handle.error, OSError)
    with pytest.raises(HTTPError) as refused:
        handle.predict({"x": 1})
    assert refused.value.status == 503
    assert refused.value.message == f"model {handle.name} is not ready (setup failed: OSError)"


def test_a_worker_killed_mid_batch_fails_its_items_503_and_comes_back(
    pool: Any, model_log: Path, tmp_path: Path, processes: Processes
) -> None:
    handle = pool(Echo)
    (worker,) = inner(handle).worker_pids
    assert handle.predict({"x": 1}).worker == worker, "this thread now holds a connection to the worker"
    held = hold_worker(handle, model_log, tmp_path / "never")
    os.kill(worker, signal.SIGKILL)
    error = outcome(held)
    assert isinstance(error, HTTPError) and error.status == 503, error
    assert error.headers == {"Retry-After": "1"}
    assert (
        error.message == f"model {handle.name}: its worker process {worker} went away while running this request; retry"
    )
    wait_until(lambda: len(events(model_log, event="setup")) == 2, "the worker to restart")
    assert handle.wait_ready(WAIT_S)
    answer = handle.predict({"x": 8})
    assert answer.x == 8 and answer.worker != worker
    processes.note(answer.worker)


def test_a_model_raising_past_exception_ends_its_worker_which_comes_back(
    pool: Any, model_log: Path, processes: Processes
) -> None:
    handle = pool(Quitter)
    (worker,) = inner(handle).worker_pids
    with pytest.raises(HTTPError) as quit_:
        handle.predict({"x": -1})
    assert quit_.value.status == 503 and quit_.value.headers == {"Retry-After": "1"}
    assert (
        quit_.value.message
        == f"model {handle.name}: its worker process {worker} went away while running this request; retry"
    )
    wait_until(lambda: len(events(model_log, event="setup")) == 2, "the worker to restart")
    assert handle.wait_ready(WAIT_S)
    answer = handle.predict({"x": 4})
    assert answer.x == 4 and answer.worker != worker
    processes.note(answer.worker)


def test_a_blocking_caller_past_its_deadline_gets_504_and_its_item_leaves_the_queue(
    pool: Any, model_log: Path, tmp_path: Path
) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, model_log, hold)
    with pytest.raises(HTTPError) as late:
        handle.predict({"x": 55}, timeout=0.3)
    assert (late.value.status, late.value.message) == (504, f"model {handle.name} did not answer within 0.3 s")
    assert inner(handle)._supervisor().workers.sync(handle.name, WAIT_S), (
        "a round trip after the caller gave up: the worker saw it"
    )
    queued = [inner(handle).submit(Item(x=x), WAIT_S) for x in (7, 8)]
    hold.touch()
    assert [outcome(f).x for f in (held, *queued)] == [-1, 7, 8], "the queue had room again: item 55 left it"
    assert handle.predict({"x": 3}).x == 3, "the same thread, on a new connection"
    assert 55 not in [x for e in events(model_log, event="batch") for x in e["xs"]]


def test_a_killed_supervisor_fails_requests_503_then_is_restarted(
    pool: Any, model_log: Path, tmp_path: Path, processes: Processes
) -> None:
    handle = pool(Echo)
    supervisor = inner(handle).supervisor_pid
    (worker,) = inner(handle).worker_pids
    held = hold_worker(handle, model_log, tmp_path / "never")
    os.kill(supervisor, signal.SIGKILL)
    error = outcome(held)
    assert isinstance(error, HTTPError) and error.status == 503, error
    assert error.headers == {"Retry-After": "1"}
    assert (
        error.message == f"model {handle.name}: its worker process {worker} went away while running this request; retry"
    )
    wait_until(lambda: not alive(worker), "the orphaned model worker to exit")
    wait_until(lambda: inner(handle).supervisor_pid not in (0, supervisor), "a new supervisor to report")
    assert handle.wait_ready(WAIT_S)
    processes.from_log()
    assert handle.predict({"x": 2}).x == 2


def test_stop_leaves_no_process_behind(pool: Any, model_log: Path, processes: Processes) -> None:
    handle = pool(Echo, workers=2)
    pids = {inner(handle).supervisor_pid, *inner(handle).worker_pids}
    socket_path = Path(inner(handle).address.socket)
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    assert socket_path.stat().st_mode & 0o777 == 0o600
    assert socket_path.parent.stat().st_mode & 0o777 == 0o700
    endpoints = [Path(path) for _, path in inner(handle)._status().workers]
    assert len(endpoints) == 2 and all(path.stat().st_mode & 0o777 == 0o600 for path in endpoints)
    assert handle.predict({"x": 1}).x == 1
    handle.stop(WAIT_S)
    wait_until(lambda: not any(alive(pid) for pid in pids), "every pool process to exit")
    assert len(events(model_log, event="teardown")) == 2
    assert not socket_path.exists()
    assert not any(path.exists() for path in endpoints)


def test_a_web_process_spreads_its_items_over_the_workers(pool: Any) -> None:
    handle = pool(Echo, workers=2)
    with ThreadPoolExecutor(16) as threads:
        answers = list(threads.map(lambda x: handle.predict({"x": x, "sleep_ms": 20}), range(64)))
    assert [answer.x for answer in answers] == list(range(64))
    assert {answer.worker for answer in answers} == set(inner(handle).worker_pids)


def test_the_pool_threads_of_a_web_process_leave_its_signals_to_the_main_thread(pool: Any) -> None:
    """A server's handler may run its exit on whichever thread takes a signal (uWSGI does): never a pool thread."""
    handle = pool(Echo)
    assert inner(handle).submit(Item(x=1), WAIT_S).result(WAIT_S).x == 1, "a shared connection and its thread"
    names = ("utilserve-pool-supervisor", f"utilserve-worker-connection-{handle.name}")
    threads = [thread for thread in threading.enumerate() if thread.name in names]
    assert len(threads) >= 2, threads
    for thread in threads:
        mask = signal_mask(f"/proc/self/task/{thread.native_id}/status")
        assert {signal.SIGINT, signal.SIGTERM} <= mask, (thread.name, mask)


def test_the_pool_processes_take_signals_though_started_from_a_thread_that_blocks_them(pool: Any) -> None:
    """A process starts with its starter's signal mask: a pool thread's, or a uWSGI thread's that blocks them all.

    The supervisor and the model workers must not keep it: their own
    handlers, and the model's, would never run.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        handle = pool(Echo)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    for pid in (inner(handle).supervisor_pid, *inner(handle).worker_pids):
        assert signal_mask(f"/proc/{pid}/status") == set(), pid


def signal_mask(status: str) -> set[signal.Signals]:
    """The signals blocked by the thread whose ``/proc/.../status`` file is ``status``."""
    line = next(line for line in Path(status).read_text().splitlines() if line.startswith("SigBlk:"))
    bits = int(line.split()[1], 16)
    return {signum for signum in signal.Signals if bits >> (signum - 1) & 1}


def _queue_then_vanish(handle: ModelHandle, xs: list[int]) -> None:
    """In a forked child: queue items behind the held one, make sure the worker has them, exit at once."""
    futures = [inner(handle).submit(Item(x=x), WAIT_S) for x in xs]
    ok = inner(handle)._supervisor().workers.sync(handle.name, WAIT_S) and not any(f.done() for f in futures)
    os._exit(0 if ok else 1)


def test_items_of_a_web_process_that_went_away_leave_the_queue(pool: Any, model_log: Path, tmp_path: Path) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, model_log, hold)
    child = multiprocessing.get_context("fork").Process(target=_queue_then_vanish, args=(handle, [500, 501]))
    child.start()
    child.join(WAIT_S)
    assert child.exitcode == 0, "the child's items were not queued behind the held one"
    assert inner(handle)._supervisor().workers.sync(handle.name, WAIT_S), (
        "a round trip after the child's end: the worker saw it"
    )
    queued = [inner(handle).submit(Item(x=x), WAIT_S) for x in (7, 8)]
    hold.touch()
    assert [outcome(f).x for f in (held, *queued)] == [-1, 7, 8], "the queue had room again: the child's items left it"
    assert not {500, 501} & {x for e in events(model_log, event="batch") for x in e["xs"]}


def test_large_bytes_travel_without_copies_and_round_trip(pool: Any) -> None:
    blob = b"ECHO" + bytes(range(256)) * 32768
    parts = codec.pack(Blob(data=blob))
    assert len(parts) == 2 and len(parts[0]) < 1024
    assert memoryview(parts[1]).obj is blob, "the sender must pass the input's own memory, not a copy"
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sender = threading.Thread(target=sockets.send, args=(ours, ("batch", [2]), parts))
        sender.start()
        head, buffers = sockets.FrameReader(theirs, exact=True).read()
        sender.join()
    received = codec.unpack(buffers)
    assert head == ("batch", [2]) and received.data == blob
    assert received.data is buffers[1], "a worker must hand the model the received bytes, not a copy"
    handle = pool(Measure)
    answer = handle.predict({"data": blob})
    assert (answer.size, answer.head, answer.echo == blob) == (len(blob), blob[:8], True)


@pytest.mark.parametrize(
    "holder",
    [
        pytest.param(lambda large: Parts(parts=[b"small", large], scores=[0.5] * 384), id="in a list"),
        pytest.param(lambda large: Blobs(blobs=[Blob(data=b"small"), Blob(data=large)]), id="in a nested model"),
    ],
)
def test_large_bytes_in_a_list_or_a_nested_model_leave_the_pickle_stream(holder: Callable[[bytes], Any]) -> None:
    large = bytes(codec.OUT_OF_BAND_MIN)
    sent = holder(large)
    parts = codec.pack(sent)
    assert len(parts) == 2 and memoryview(parts[1]).obj is large and len(parts[0]) < 8192
    assert codec.unpack(parts) == sent


def test_a_vector_of_floats_and_small_bytes_stay_in_the_pickle_stream() -> None:
    sent = Parts(parts=[b"small"], scores=[0.25] * 384)
    parts = codec.pack(sent)
    assert len(parts) == 1 and codec.unpack(parts) == sent


def test_a_model_that_cannot_be_imported_by_name_is_refused_where_declared() -> None:
    class Local(Echo):
        pass

    with pytest.raises(TypeError, match=r"pool='process' imports the model class by name .*defined inside a function"):
        ModelHandle(Local, pool="process").start()
    service = Service(__name__, name="refuses", backend="flask")
    with pytest.raises(TypeError, match="is not importable"):
        service.model(Local, pool="process")
