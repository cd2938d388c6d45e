"""The process pool: a supervisor process shared by every web process, with real processes throughout.

In-process tests drive ``ModelHandle(..., pool="process")`` from the test
process (the pool's owner) and from forked children; HTTP tests run the
deploy/ templates under gunicorn and uWSGI, and a sidecar started with
``utilserve pool``. The models (tests/support/models/process.py) log what they
see to ``$MODEL_LOG``; an item's ``hold`` file keeps a worker busy until the
test creates it. Waits are generous and no test asserts a duration.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from utilserve import Model, Service
from utilserve.api.errors import HTTPError
from utilserve.pool import ModelHandle, protocol
from utilserve.pool.process import ProcessPool

from ..support.models.process import Blob, Broken, Echo, Item, Measure, Narrow, Picky, Quitter
from ..support.servers import BIN, ROOT, Server, free_port

WAIT_S = 60.0
"""Upper bound for anything that waits on processes starting on a busy machine; a bug fails, not hangs."""
APP = "tests.apps.pool_process:app"
SERVICE = "tests.apps.pool_process:service"


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    end = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def events(log: Path, event: str) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [e for e in map(json.loads, log.read_text().splitlines()) if e["event"] == event]


def outcome(future: Any) -> Any:
    try:
        return future.result(WAIT_S)
    except HTTPError as error:
        return error


class Processes:
    """Every pid a test saw; whatever is still alive at teardown is killed, so no test leaks a process."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.pids: set[int] = set()

    def note(self, *pids: int) -> None:
        self.pids.update(pid for pid in pids if pid)

    def from_log(self) -> set[int]:
        """Model workers and their supervisors, as the model's ``setup`` recorded them."""
        found = {pid for e in events(self.log, "setup") for pid in (e["pid"], e["ppid"])}
        self.note(*found)
        return found

    def kill_leftovers(self) -> None:
        self.from_log()
        for pid in self.pids:
            if alive(pid) and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "model.log"
    monkeypatch.setenv("MODEL_LOG", str(path))
    return path


@pytest.fixture
def procs(log: Path) -> Iterator[Processes]:
    processes = Processes(log)
    yield processes
    processes.kill_leftovers()


@pytest.fixture
def pool(request: pytest.FixtureRequest, procs: Processes) -> Iterator[Callable[..., ModelHandle]]:
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
        procs.note(process_pool.supervisor_pid, *process_pool.worker_pids)

    yield make
    for handle in handles:
        if handle.ready:
            remember(handle)
        handle.stop(WAIT_S)


def inner(handle: ModelHandle) -> ProcessPool:
    process_pool = handle._pool
    assert isinstance(process_pool, ProcessPool)
    return process_pool


def hold_worker(handle: ModelHandle, log: Path, hold: Path, x: int = -1) -> Any:
    """Submit an item that keeps its worker busy until ``hold`` exists; return its future once it runs."""
    future = inner(handle).submit(Item(x=x, hold=str(hold)), WAIT_S)
    wait_until(lambda: any(x in e["xs"] for e in events(log, "batch")), "the held batch to start")
    return future


# ---------------------------------------------------------------- in-process


def _submit_from_child(handle: ModelHandle, count: int, ready: Any, results: Any) -> None:
    """In a forked child: send ``count`` items through the inherited pool, report what came back."""
    pid = os.getpid()
    futures = [inner(handle).submit(Item(x=pid * 100 + i, pid=pid), WAIT_S) for i in range(count)]
    assert inner(handle)._link().sync(handle.name, WAIT_S), "the worker queued the items before this round trip"
    ready.put(pid)
    results.put([(f.result(WAIT_S).x, pid) for f in futures])


def test_one_batch_mixes_items_from_two_forked_client_processes(pool: Any, log: Path, tmp_path: Path) -> None:
    handle = pool(Echo)
    hold = tmp_path / "hold"
    held = hold_worker(handle, log, hold)
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
    mixed = [e for e in events(log, "batch") if pids <= set(e["webs"])]
    assert mixed, events(log, "batch")


def test_a_full_queue_answers_503_at_once_and_recovers(pool: Any, log: Path, tmp_path: Path) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, log, hold)
    queued = [inner(handle).submit(Item(x=i), WAIT_S) for i in range(2)]
    rejected = outcome(inner(handle).submit(Item(x=9), WAIT_S))
    hold.touch()
    assert isinstance(rejected, HTTPError) and rejected.status == 503, rejected
    assert rejected.message == f"model {handle.name} is overloaded: 2 requests already queued"
    assert rejected.headers == {"Retry-After": "1"}
    assert [outcome(f).x for f in (held, *queued)] == [-1, 0, 1]
    assert handle.predict({"x": 5}).x == 5


def test_a_deadline_passed_while_queued_is_504_and_never_reaches_the_model(
    pool: Any, log: Path, tmp_path: Path
) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, log, hold)
    late = inner(handle).submit(Item(x=77), 0.2)
    time.sleep(0.6)
    hold.touch()
    error = outcome(late)
    assert isinstance(error, HTTPError) and error.status == 504, error
    assert error.message == f"model {handle.name}: deadline passed while queued"
    assert outcome(held).x == -1
    assert handle.predict({"x": 3}).x == 3
    assert 77 not in [x for e in events(log, "batch") for x in e["xs"]]


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


def test_not_ready_while_a_slow_setup_runs_then_ready(
    pool: Any, log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "setup-gate"
    monkeypatch.setenv("SETUP_GATE", str(gate))
    handle = pool(Echo, workers=2, ready=False)
    assert not handle.ready
    assert handle.wait_ready(0.2) is False
    with pytest.raises(HTTPError) as early:
        handle.predict({"x": 1})
    assert early.value.status == 503 and early.value.headers == {"Retry-After": "1"}
    assert early.value.message == f"model {handle.name} is not ready"
    gate.touch()
    assert handle.wait_ready(WAIT_S)
    assert handle.predict({"x": 1}).x == 1
    assert len(events(log, "setup")) == 2


def test_a_failed_setup_keeps_the_pool_unready_and_says_why(pool: Any) -> None:
    handle = pool(Broken, ready=False)
    with pytest.raises(RuntimeError, match="setup failed: OSError: weights.bin not found"):
        handle.wait_ready(WAIT_S)
    assert not handle.ready
    assert isinstance(handle.error, OSError)
    with pytest.raises(HTTPError) as refused:
        handle.predict({"x": 1})
    assert refused.value.status == 503
    assert refused.value.message == f"model {handle.name} is not ready (setup failed: OSError)"


def test_a_worker_killed_mid_batch_fails_its_items_503_and_comes_back(
    pool: Any, log: Path, tmp_path: Path, procs: Processes
) -> None:
    handle = pool(Echo)
    (worker,) = inner(handle).worker_pids
    assert handle.predict({"x": 1}).worker == worker, "this thread now holds a connection to the worker"
    held = hold_worker(handle, log, tmp_path / "never")
    os.kill(worker, signal.SIGKILL)
    error = outcome(held)
    assert isinstance(error, HTTPError) and error.status == 503, error
    assert error.headers == {"Retry-After": "1"}
    assert error.message == f"model {handle.name}: its worker process {worker} went away while running this request; retry"
    wait_until(lambda: len(events(log, "setup")) == 2, "the worker to restart")
    assert handle.wait_ready(WAIT_S)
    answer = handle.predict({"x": 8})
    assert answer.x == 8 and answer.worker != worker
    procs.note(answer.worker)


def test_a_model_raising_past_exception_ends_its_worker_which_comes_back(pool: Any, log: Path, procs: Processes) -> None:
    handle = pool(Quitter)
    (worker,) = inner(handle).worker_pids
    with pytest.raises(HTTPError) as quit_:
        handle.predict({"x": -1})
    assert quit_.value.status == 503 and quit_.value.headers == {"Retry-After": "1"}
    assert quit_.value.message == f"model {handle.name}: its worker process {worker} went away while running this request; retry"
    wait_until(lambda: len(events(log, "setup")) == 2, "the worker to restart")
    assert handle.wait_ready(WAIT_S)
    answer = handle.predict({"x": 4})
    assert answer.x == 4 and answer.worker != worker
    procs.note(answer.worker)


def test_a_blocking_caller_past_its_deadline_gets_504_and_its_item_leaves_the_queue(
    pool: Any, log: Path, tmp_path: Path
) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, log, hold)
    with pytest.raises(HTTPError) as late:
        handle.predict({"x": 55}, timeout=0.3)
    assert (late.value.status, late.value.message) == (504, f"model {handle.name} did not answer within 0.3 s")
    assert inner(handle)._link().sync(handle.name, WAIT_S), "a round trip after the caller gave up: the worker saw it"
    queued = [inner(handle).submit(Item(x=x), WAIT_S) for x in (7, 8)]
    hold.touch()
    assert [outcome(f).x for f in (held, *queued)] == [-1, 7, 8], "the queue had room again: item 55 left it"
    assert handle.predict({"x": 3}).x == 3, "the same thread, on a new connection"
    assert 55 not in [x for e in events(log, "batch") for x in e["xs"]]


def test_a_killed_supervisor_fails_requests_503_then_is_restarted(
    pool: Any, log: Path, tmp_path: Path, procs: Processes
) -> None:
    handle = pool(Echo)
    supervisor = inner(handle).supervisor_pid
    (worker,) = inner(handle).worker_pids
    held = hold_worker(handle, log, tmp_path / "never")
    os.kill(supervisor, signal.SIGKILL)
    error = outcome(held)
    assert isinstance(error, HTTPError) and error.status == 503, error
    assert error.headers == {"Retry-After": "1"}
    assert error.message == f"model {handle.name}: its worker process {worker} went away while running this request; retry"
    wait_until(lambda: not alive(worker), "the orphaned model worker to exit")
    assert handle.wait_ready(WAIT_S)
    procs.from_log()
    assert inner(handle).supervisor_pid not in (0, supervisor)
    assert handle.predict({"x": 2}).x == 2


def test_stop_leaves_no_process_behind(pool: Any, log: Path, procs: Processes) -> None:
    handle = pool(Echo, workers=2)
    pids = {inner(handle).supervisor_pid, *inner(handle).worker_pids}
    socket_path = Path(inner(handle).address.socket)
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    assert socket_path.stat().st_mode & 0o777 == 0o600
    assert socket_path.parent.stat().st_mode & 0o777 == 0o700
    endpoints = [Path(path) for _, path in inner(handle)._state().workers]
    assert len(endpoints) == 2 and all(path.stat().st_mode & 0o777 == 0o600 for path in endpoints)
    assert handle.predict({"x": 1}).x == 1
    handle.stop(WAIT_S)
    wait_until(lambda: not any(alive(pid) for pid in pids), "every pool process to exit")
    assert len(events(log, "teardown")) == 2
    assert not socket_path.exists()
    assert not any(path.exists() for path in endpoints)


def test_a_web_process_spreads_its_items_over_the_workers(pool: Any) -> None:
    handle = pool(Echo, workers=2)
    with ThreadPoolExecutor(16) as threads:
        answers = list(threads.map(lambda x: handle.predict({"x": x, "sleep_ms": 20}), range(64)))
    assert [answer.x for answer in answers] == list(range(64))
    assert {answer.worker for answer in answers} == set(inner(handle).worker_pids)


def _queue_then_vanish(handle: ModelHandle, xs: list[int]) -> None:
    """In a forked child: queue items behind the held one, make sure the worker has them, exit at once."""
    futures = [inner(handle).submit(Item(x=x), WAIT_S) for x in xs]
    ok = inner(handle)._link().sync(handle.name, WAIT_S) and not any(f.done() for f in futures)
    os._exit(0 if ok else 1)


def test_items_of_a_web_process_that_went_away_leave_the_queue(pool: Any, log: Path, tmp_path: Path) -> None:
    handle = pool(Narrow)
    hold = tmp_path / "hold"
    held = hold_worker(handle, log, hold)
    child = multiprocessing.get_context("fork").Process(target=_queue_then_vanish, args=(handle, [500, 501]))
    child.start()
    child.join(WAIT_S)
    assert child.exitcode == 0, "the child's items were not queued behind the held one"
    assert inner(handle)._link().sync(handle.name, WAIT_S), "a round trip after the child's end: the worker saw it"
    queued = [inner(handle).submit(Item(x=x), WAIT_S) for x in (7, 8)]
    hold.touch()
    assert [outcome(f).x for f in (held, *queued)] == [-1, 7, 8], "the queue had room again: the child's items left it"
    assert not {500, 501} & {x for e in events(log, "batch") for x in e["xs"]}


def test_large_bytes_travel_without_copies_and_round_trip(pool: Any) -> None:
    blob = b"ECHO" + bytes(range(256)) * 32768
    parts = protocol.pack(Blob(data=blob))
    assert len(parts) == 2 and len(parts[0]) < 1024
    assert memoryview(parts[1]).obj is blob, "the sender must pass the input's own memory, not a copy"
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sender = threading.Thread(target=protocol.send, args=(ours, ("batch", [2]), parts))
        sender.start()
        head, buffers = protocol.FrameReader(theirs, exact=True).read()
        sender.join()
    received = protocol.unpack(buffers)
    assert head == ("batch", [2]) and received.data == blob
    assert received.data is buffers[1], "a worker must hand the model the received bytes, not a copy"
    handle = pool(Measure)
    answer = handle.predict({"data": blob})
    assert (answer.size, answer.head, answer.echo == blob) == (len(blob), blob[:8], True)


def test_a_model_that_cannot_be_imported_by_name_is_refused_where_declared() -> None:
    class Local(Echo):
        pass

    with pytest.raises(TypeError, match=r"pool='process' imports the model class by name .*defined inside a function"):
        ModelHandle(Local, pool="process").start()
    service = Service(__name__, name="refuses", backend="flask")
    with pytest.raises(TypeError, match="is not importable"):
        service.model(Local, pool="process")


# ---------------------------------------------------------------- over HTTP


def gunicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
            "-w", "4", APP]


def uwsgi(port: int) -> list[str]:
    return [str(BIN / "uwsgi"), "--ini", "deploy/uwsgi.ini", "--http11-socket", f"127.0.0.1:{port}",
            "--processes", "4", "--virtualenv", sys.prefix, "--module", APP]


SERVERS = {"flask@gunicorn": gunicorn, "flask@uwsgi": uwsgi}


def start_server(command: Callable[[int], list[str]], log: Path, **env: str) -> Server:
    port = free_port()
    return Server(command(port), port, {"MODEL_LOG": str(log), **env}).start()


def wait_ready(server: Server) -> None:
    """Ready on a few answers in a row: each may come from a different web worker."""
    wait_until(lambda: all(httpx.get(server.url + "/readyz").status_code == 200 for _ in range(4)),
               "the service to be ready")


def burst(server: Server, count: int, threads: int = 32, **params: Any) -> list[httpx.Response]:
    """``count`` requests from ``threads`` threads, a new connection each, so they spread over the web workers."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def get(x: int) -> httpx.Response:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, timeout=WAIT_S, headers={"Connection": "close"})
            clients.append(local.client)
        return local.client.get("/api/work", params={"x": x, **params})

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(get, range(count)))
    finally:
        for client in clients:
            client.close()


def assert_batched_once_per_worker(server: Server, log: Path) -> set[int]:
    """Setup ran once per model worker, in one supervisor; some batch mixed two web processes."""
    wait_ready(server)
    responses = burst(server, 300, sleep_ms=2)
    assert [r.json()["x"] for r in responses] == list(range(300)), {r.status_code for r in responses}
    setups = events(log, "setup")
    assert len(setups) == 2, setups
    assert len({e["ppid"] for e in setups}) == 1, setups
    webs = {r.json()["web"] for r in responses}
    assert len(webs) >= 2, webs
    batches = events(log, "batch")
    assert any(len(set(e["webs"])) >= 2 for e in batches), [e["webs"] for e in batches]
    return {pid for e in setups for pid in (e["pid"], e["ppid"])}


def stopped_cleanly(pids: set[int]) -> None:
    wait_until(lambda: not any(alive(pid) for pid in pids), f"pool processes {sorted(pids)} to exit")


def shut_down(server: Server, pids: set[int]) -> None:
    """SIGTERM the master as an operator would; ``pids`` (the pool) must then exit on their own.

    Checked before ``Server.stop()``, which kills whatever is left of the
    server's process group and would hide a pool that stayed behind.
    """
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(WAIT_S)
    stopped_cleanly(pids)


@dataclass
class PoolMode:
    """Who starts the pool: the service's own web workers (``owned``), or ``utilserve pool`` beforehand (``sidecar``)."""

    name: str
    server_env: dict[str, str] = field(default_factory=dict)
    sidecar: subprocess.Popen[bytes] | None = None

    def shut_down(self, server: Server, procs: Processes) -> None:
        """SIGTERM the master: an owned pool exits with it; a sidecar's lives on until it gets its own SIGTERM."""
        shut_down(server, set() if self.sidecar else procs.from_log())
        if self.sidecar is not None:
            assert self.sidecar.poll() is None, "the sidecar pool outlives the web server"


@contextmanager
def sidecar_pool(log: Path, socket_path: Path, procs: Processes) -> Iterator[subprocess.Popen[bytes]]:
    """``utilserve pool`` in the foreground with both models loaded; on exit, SIGTERM ends it and its workers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UTILSERVE_POOL": "process", "MODEL_LOG": str(log)}
    sidecar = subprocess.Popen([sys.executable, "-m", "utilserve", "pool", SERVICE, "--socket", str(socket_path)],
                               cwd=ROOT, env=env)
    procs.note(sidecar.pid)
    try:
        wait_until(socket_path.exists, "the sidecar's socket")
        wait_until(lambda: len(events(log, "setup")) == 2, "the sidecar's models to load")
        yield sidecar
        assert sidecar.poll() is None, "the sidecar outlives the web server"
        pids = procs.from_log()
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(WAIT_S) == 0
        stopped_cleanly(pids)
    finally:
        sidecar.kill()
        sidecar.wait()


@pytest.fixture(params=["owned", "sidecar"])
def mode(request: pytest.FixtureRequest, log: Path, tmp_path: Path, procs: Processes) -> Iterator[PoolMode]:
    if request.param == "owned":
        yield PoolMode("owned")
        return
    socket_path = tmp_path / "run" / "pool.sock"
    with sidecar_pool(log, socket_path, procs) as sidecar:
        yield PoolMode("sidecar", {"UTILSERVE_POOL_SOCKET": str(socket_path)}, sidecar)


@pytest.mark.parametrize("name", SERVERS)
def test_web_workers_share_one_pool_and_batch_together(name: str, mode: PoolMode, log: Path, procs: Processes) -> None:
    server = start_server(SERVERS[name], log, **mode.server_env)
    try:
        pids = assert_batched_once_per_worker(server, log)
        if mode.sidecar is not None:
            assert pids == {mode.sidecar.pid, *(e["pid"] for e in events(log, "setup"))}
        mode.shut_down(server, procs)
    finally:
        server.stop()


def test_gunicorn_recycling_its_workers_keeps_the_one_pool(log: Path, procs: Processes) -> None:
    """The web worker that started the supervisor may be recycled: the pool lives on with the master."""
    server = start_server(lambda port: [*gunicorn(port), "--max-requests", "40"], log)
    try:
        wait_ready(server)
        responses = burst(server, 400, 8)
        assert [r.status_code for r in responses] == [200] * 400
        assert len({r.json()["web"] for r in responses}) > 4, "gunicorn recycled no worker"
        setups = events(log, "setup")
        assert len(setups) == 2 and len({e["ppid"] for e in setups}) == 1, setups
        shut_down(server, procs.from_log())
    finally:
        server.stop()


def test_gunicorn_a_model_worker_killed_under_load_comes_back(
    mode: PoolMode, log: Path, tmp_path: Path, procs: Processes
) -> None:
    server = start_server(gunicorn, log, **mode.server_env)
    try:
        wait_ready(server)
        hold = tmp_path / "never"
        with ThreadPoolExecutor(2) as executor:
            load = executor.submit(burst, server, 400, 16, sleep_ms=5, timeout=10)
            held = executor.submit(httpx.get, server.url + "/api/work",
                                   params={"x": -1, "hold": str(hold), "timeout": 10}, timeout=WAIT_S)
            busy = wait_until(lambda: [e for e in events(log, "batch") if -1 in e["xs"]], "the held batch")
            os.kill(busy[0]["pid"], signal.SIGKILL)
            killed = held.result(WAIT_S)
            responses = load.result(WAIT_S)
        assert killed.status_code == 503, killed.text
        assert "went away while running this request" in killed.json()["error"]["message"]
        assert {r.status_code for r in responses} <= {200, 503}, {r.status_code for r in responses}
        wait_until(lambda: len(events(log, "setup")) == 3, "the killed worker to restart")
        wait_ready(server)
        later = burst(server, 40, 8)
        assert [r.status_code for r in later] == [200] * 40
        mode.shut_down(server, procs)
    finally:
        server.stop()


def test_gunicorn_sigterm_under_load_answers_every_accepted_request(
    mode: PoolMode, log: Path, procs: Processes
) -> None:
    """Every request a web worker accepted is answered in full; an owned pool then exits, a sidecar does not."""
    server = start_server(gunicorn, log, **mode.server_env)
    answered: dict[int, httpx.Response] = {}
    refused: list[Exception] = []
    stop = threading.Event()

    def client(first: int) -> None:
        x = first
        with httpx.Client(base_url=server.url, timeout=WAIT_S) as session:
            while not stop.is_set():
                try:
                    answered[x] = session.get("/api/work", params={"x": x, "sleep_ms": 20})
                except httpx.TransportError as error:
                    refused.append(error)
                    if server.process is not None and server.process.poll() is not None:
                        return
                    time.sleep(0.01)
                x += 1

    try:
        wait_ready(server)
        threads = [threading.Thread(target=client, args=(i * 100_000,)) for i in range(16)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(answered) >= 100, "load to get going")
        mode.shut_down(server, procs)
        stop.set()
        for thread in threads:
            thread.join(WAIT_S)
    finally:
        stop.set()
        server.stop()
    accepted = {e["x"] for e in events(log, "accepted")}
    assert accepted and accepted <= set(answered), sorted(accepted - set(answered))[:10]
    assert all(answered[x].status_code == 200 and answered[x].json()["x"] == x for x in accepted)


def test_sidecar_socket_is_private_and_taken_once(log: Path, tmp_path: Path, procs: Processes) -> None:
    socket_path = tmp_path / "run" / "pool.sock"
    with sidecar_pool(log, socket_path, procs):
        assert socket_path.stat().st_mode & 0o777 == 0o600
        assert socket_path.parent.stat().st_mode & 0o077 == 0, oct(socket_path.parent.stat().st_mode)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "UTILSERVE_POOL": "process"}
        second = utilserve_pool(env, "--socket", str(socket_path))
        assert second.returncode == 1 and f"a pool supervisor already listens at {socket_path}" in second.stderr
    assert len(events(log, "teardown")) == 2


def utilserve_pool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "utilserve", "pool", SERVICE, *args], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=WAIT_S)


def test_utilserve_pool_says_what_it_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("UTILSERVE_POOL", None)
    env.pop("UTILSERVE_POOL_SOCKET", None)
    no_socket = utilserve_pool({**env, "UTILSERVE_POOL": "process"})
    assert no_socket.returncode == 1 and "no socket path; give --socket PATH" in no_socket.stderr
    no_models = utilserve_pool(env, "--socket", str(tmp_path / "pool.sock"))
    assert no_models.returncode == 1
    assert f"{SERVICE} declares no model with the process pool" in no_models.stderr
