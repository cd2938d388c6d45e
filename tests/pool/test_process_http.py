"""The process pool over HTTP: one supervisor for every web process of a real server, with real processes throughout.

The deploy/ templates run under gunicorn and uWSGI; the pool is started by
the web workers themselves or, beforehand, by ``utilserve pool`` (a
sidecar). The model (tests/support/models/process.py) logs what it sees to
``$MODEL_LOG``; an item's ``hold`` file keeps a worker busy until the test
creates it. Waits are generous and no test asserts a duration but one: a
server whose process group gets SIGTERM is gone, pool included, within
:data:`GROUP_STOP_S`.
"""

from __future__ import annotations

import os
import signal
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

from ..support.models.log import events
from ..support.pool_over_http import wait_ready
from ..support.processes import WAIT_S, Processes, alive, wait_until
from ..support.servers import BIN, ROOT, Server, cmdline, free_port

APP = "tests.apps.pool_process:app"
SERVICE = "tests.apps.pool_process:service"


def gunicorn(port: int, app: str = APP) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "deploy/gunicorn.conf.py",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        "4",
        app,
    ]


def uwsgi(port: int, app: str = APP) -> list[str]:
    return [
        str(BIN / "uwsgi"),
        "--ini",
        "deploy/uwsgi.ini",
        "--http11-socket",
        f"127.0.0.1:{port}",
        "--processes",
        "4",
        "--virtualenv",
        sys.prefix,
        "--module",
        app,
    ]


SERVERS = {"flask@gunicorn": gunicorn, "flask@uwsgi": uwsgi}
GROUP_SERVERS = {
    "flask@uwsgi": lambda port: [*uwsgi(port), "--threads", "1"],
    "flask@uwsgi-threads": uwsgi,
    "flask@gunicorn": lambda port: [*gunicorn(port), "-w", "2"],
}
GROUP_STOPS = {"flask@uwsgi": 8, "flask@uwsgi-threads": 3, "flask@gunicorn": 3}
"""Stops per server: under single-threaded uWSGI about one in eight hung while a pool thread could take a signal."""
GROUP_STOP_S = 10.0
"""How long a stopped server may take, as ``docker stop`` allows before it kills."""
PAUSE_S = 0.5
"""How long web workers stay paused after the group's signal: their master signals them meanwhile."""


def start(command: Callable[[int], list[str]], model_log: Path, **env: str) -> Server:
    port = free_port()
    return Server(command(port), port, {"MODEL_LOG": str(model_log), **env}).start()


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


def assert_batched_once_per_worker(server: Server, model_log: Path) -> set[int]:
    """Setup ran once per model worker, in one supervisor; some batch mixed two web processes."""
    wait_ready(server, in_a_row=4)
    responses = burst(server, 300, sleep_ms=2)
    assert [r.json()["x"] for r in responses] == list(range(300)), {r.status_code for r in responses}
    setups = events(model_log, event="setup")
    assert len(setups) == 2, setups
    assert len({e["ppid"] for e in setups}) == 1, setups
    webs = {r.json()["web"] for r in responses}
    assert len(webs) >= 2, webs
    batches = events(model_log, event="batch")
    assert any(len(set(e["webs"])) >= 2 for e in batches), [e["webs"] for e in batches]
    return {pid for e in setups for pid in (e["pid"], e["ppid"])}


def stopped_cleanly(pids: set[int]) -> None:
    wait_until(lambda: not any(alive(pid) for pid in pids), f"pool processes {sorted(pids)} to exit")


def shut_down(server: Server, pids: set[int], whole_group: bool = False) -> None:
    """SIGTERM the master as an operator would, or its whole process group as Ctrl-C and systemd do;
    ``pids`` (the pool) must then exit on their own.

    Checked before ``Server.stop()``, which kills whatever is left of the
    server's process group and would hide a pool that stayed behind.
    """
    assert server.process is not None
    if whole_group:
        os.killpg(server.process.pid, signal.SIGTERM)
    else:
        server.process.send_signal(signal.SIGTERM)
    server.process.wait(WAIT_S)
    stopped_cleanly(pids)


@dataclass
class PoolMode:
    """Who starts the pool: the service's web workers (``owned``), or ``utilserve pool`` beforehand (``sidecar``)."""

    name: str
    server_env: dict[str, str] = field(default_factory=dict)
    sidecar: subprocess.Popen[bytes] | None = None

    def shut_down(self, server: Server, processes: Processes, whole_group: bool = False) -> None:
        """SIGTERM the master (or its group): an owned pool exits with it; a sidecar lives on until it gets its own."""
        shut_down(server, set() if self.sidecar else processes.from_log(), whole_group)
        if self.sidecar is not None:
            assert self.sidecar.poll() is None, "the sidecar pool outlives the web server"


@contextmanager
def sidecar_pool(model_log: Path, socket_path: Path, processes: Processes) -> Iterator[subprocess.Popen[bytes]]:
    """``utilserve pool`` in the foreground with both models loaded; on exit, SIGTERM ends it and its workers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UTILSERVE_POOL": "process", "MODEL_LOG": str(model_log)}
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "utilserve", "pool", SERVICE, "--socket", str(socket_path)], cwd=ROOT, env=env
    )
    processes.note(sidecar.pid)
    try:
        wait_until(socket_path.exists, "the sidecar's socket")
        wait_until(lambda: len(events(model_log, event="setup")) == 2, "the sidecar's models to load")
        yield sidecar
        assert sidecar.poll() is None, "the sidecar outlives the web server"
        pids = processes.from_log()
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(WAIT_S) == 0
        stopped_cleanly(pids)
    finally:
        sidecar.kill()
        sidecar.wait()


@pytest.fixture(params=["owned", "sidecar"])
def mode(request: pytest.FixtureRequest, model_log: Path, tmp_path: Path, processes: Processes) -> Iterator[PoolMode]:
    if request.param == "owned":
        yield PoolMode("owned")
        return
    socket_path = tmp_path / "run" / "pool.sock"
    with sidecar_pool(model_log, socket_path, processes) as sidecar:
        yield PoolMode("sidecar", {"UTILSERVE_POOL_SOCKET": str(socket_path)}, sidecar)


@pytest.mark.parametrize("name", SERVERS)
def test_web_workers_share_one_pool_and_batch_together(
    name: str, mode: PoolMode, model_log: Path, processes: Processes
) -> None:
    server = start(SERVERS[name], model_log, **mode.server_env)
    try:
        pids = assert_batched_once_per_worker(server, model_log)
        if mode.sidecar is not None:
            assert pids == {mode.sidecar.pid, *(e["pid"] for e in events(model_log, event="setup"))}
        mode.shut_down(server, processes)
    finally:
        server.stop()


def test_gunicorn_recycling_its_workers_keeps_the_one_pool(model_log: Path, processes: Processes) -> None:
    """The web worker that started the supervisor may be recycled: the pool lives on with the master."""
    server = start(lambda port: [*gunicorn(port), "--max-requests", "40"], model_log)
    try:
        wait_ready(server, in_a_row=4)
        responses = burst(server, 400, 8)
        assert [r.status_code for r in responses] == [200] * 400
        assert len({r.json()["web"] for r in responses}) > 4, "gunicorn recycled no worker"
        setups = events(model_log, event="setup")
        assert len(setups) == 2 and len({e["ppid"] for e in setups}) == 1, setups
        shut_down(server, processes.from_log())
    finally:
        server.stop()


def test_gunicorn_a_model_worker_killed_under_load_comes_back(
    mode: PoolMode, model_log: Path, tmp_path: Path, processes: Processes
) -> None:
    server = start(gunicorn, model_log, **mode.server_env)
    try:
        wait_ready(server, in_a_row=4)
        hold = tmp_path / "never"
        with ThreadPoolExecutor(2) as executor:
            load = executor.submit(burst, server, 400, 16, sleep_ms=5, timeout=10)
            held = executor.submit(
                httpx.get, server.url + "/api/work", params={"x": -1, "hold": str(hold), "timeout": 10}, timeout=WAIT_S
            )
            busy = wait_until(lambda: [e for e in events(model_log, event="batch") if -1 in e["xs"]], "the held batch")
            os.kill(busy[0]["pid"], signal.SIGKILL)
            killed = held.result(WAIT_S)
            responses = load.result(WAIT_S)
        assert killed.status_code == 503, killed.text
        assert "went away while running this request" in killed.json()["error"]["message"]
        assert {r.status_code for r in responses} <= {200, 503}, {r.status_code for r in responses}
        wait_until(lambda: len(events(model_log, event="setup")) == 3, "the killed worker to restart")
        wait_ready(server, in_a_row=4)
        later = burst(server, 40, 8)
        assert [r.status_code for r in later] == [200] * 40
        mode.shut_down(server, processes)
    finally:
        server.stop()


@pytest.mark.parametrize("whole_group", [False, True], ids=["to-the-master", "to-the-group"])
def test_gunicorn_sigterm_under_load_answers_every_accepted_request(
    whole_group: bool, mode: PoolMode, model_log: Path, processes: Processes
) -> None:
    """Every request a web worker accepted is answered in full; an owned pool then exits, a sidecar does not.

    A SIGTERM to the whole group reaches an owned pool too, which outlives
    the master all the same, or the last requests would find it gone.
    """
    server = start(gunicorn, model_log, **mode.server_env)
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
        wait_ready(server, in_a_row=4)
        threads = [threading.Thread(target=client, args=(i * 100_000,)) for i in range(16)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(answered) >= 100, "load to get going")
        mode.shut_down(server, processes, whole_group)
        stop.set()
        for thread in threads:
            thread.join(WAIT_S)
    finally:
        stop.set()
        server.stop()
    accepted = {e["x"] for e in events(model_log, event="accepted")}
    assert accepted and accepted <= set(answered), sorted(accepted - set(answered))[:10]
    assert all(answered[x].status_code == 200 and answered[x].json()["x"] == x for x in accepted)


@pytest.mark.parametrize("name", GROUP_SERVERS)
def test_sigterm_to_the_process_group_under_load_stops_every_process_in_time(
    name: str, model_log: Path, tmp_path: Path, processes: Processes
) -> None:
    """What Ctrl-C, systemd and container runtimes do: the server, supervisor and model workers all get SIGTERM.

    The web workers are paused when it comes, as on a busy machine, so their
    master's own signal reaches them before they run and may go to any of
    their threads (the main thread has one pending). A model worker started
    after the signal (a supervisor started again, a worker restarted) would
    load for a minute, as a real model may: its setup waits for a gate that
    is gone by then.
    """
    gate = tmp_path / "gate"
    for run in range(GROUP_STOPS[name]):
        gate.touch()
        since = model_log.stat().st_size if model_log.exists() else 0
        server = start(GROUP_SERVERS[name], model_log, SETUP_GATE=str(gate))
        try:
            wait_ready(server, in_a_row=4)
            pool = {pid for e in events(model_log, since, event="setup") for pid in (e["pid"], e["ppid"])}
            processes.note(*pool)
            with steady_load(server) as answered:
                wait_until(lambda: answered() >= 50, "load to get going")
                gate.unlink()
                took, left = stop_group(server, pool)
            assert not left, f"run {run}: after {took:.1f} s these were left:\n" + "\n".join([*left, server.output()])
        finally:
            server.stop()


def test_uwsgi_a_worker_whose_pool_thread_is_offered_its_signal_still_exits(
    model_log: Path, processes: Processes
) -> None:
    """uWSGI runs a worker's exit on the thread that took the signal; on a pool thread that exit never ends.

    A thread takes a signal sent to its process when the main thread has
    one pending already (a SIGTERM to the group, then the master's SIGINT).
    ``kill`` aimed at a thread's id offers the signal to that thread first:
    a pool thread must leave it to the main thread, and the worker exits.
    """
    server = start(lambda port: [*uwsgi(port), "--threads", "1"], model_log)
    try:
        wait_ready(server, in_a_row=4)
        burst(server, 40, 8)
        worker, *_ = wait_until(
            lambda: [pid for pid in server.children() if len(os.listdir(f"/proc/{pid}/task")) > 1],
            "a web worker with a pool thread",
        )
        pool_thread = next(int(task) for task in os.listdir(f"/proc/{worker}/task") if int(task) != worker)
        os.kill(pool_thread, signal.SIGINT)
        wait_until(lambda: not alive(worker), f"web worker {worker} to exit", GROUP_STOP_S)
    finally:
        server.stop()


@contextmanager
def steady_load(server: Server, threads: int = 8) -> Iterator[Callable[[], int]]:
    """Requests from ``threads`` threads until the block ends; yields how many were answered so far."""
    answered = [0] * threads
    stop = threading.Event()

    def client(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=WAIT_S) as session:
            while not stop.is_set():
                try:
                    session.get("/api/work", params={"x": index, "sleep_ms": 20})
                except httpx.TransportError:
                    time.sleep(0.01)
                else:
                    answered[index] += 1

    clients = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for thread in clients:
        thread.start()
    try:
        yield lambda: sum(answered)
    finally:
        stop.set()
        for thread in clients:
            thread.join(WAIT_S)


def stop_group(server: Server, pool: set[int]) -> tuple[float, list[str]]:
    """SIGTERM the server's process group, its web workers paused for :data:`PAUSE_S`.

    Returns the seconds until every process of the server and of its
    ``pool`` was gone, and those still there after :data:`GROUP_STOP_S`.
    """
    assert server.process is not None
    workers = server.children()
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: all(paused(pid) for pid in workers), "the web workers to pause")
    started = time.monotonic()
    os.killpg(server.process.pid, signal.SIGTERM)
    time.sleep(PAUSE_S)
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    while (left := [pid for pid in {*server.members(), *pool} if alive(pid)]) and (
        time.monotonic() - started < GROUP_STOP_S
    ):
        time.sleep(0.05)
    return time.monotonic() - started, [f"{pid} {cmdline(pid)[:120]}" for pid in left]


def paused(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (or gone)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    for task in tasks:
        try:
            state = Path(f"/proc/{pid}/task/{task}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("T", "t"):
            return False
    return True


def test_sidecar_socket_is_private_and_taken_once(model_log: Path, tmp_path: Path, processes: Processes) -> None:
    socket_path = tmp_path / "run" / "pool.sock"
    with sidecar_pool(model_log, socket_path, processes):
        assert socket_path.stat().st_mode & 0o777 == 0o600
        assert socket_path.parent.stat().st_mode & 0o077 == 0, oct(socket_path.parent.stat().st_mode)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "UTILSERVE_POOL": "process"}
        second = utilserve_pool(env, "--socket", str(socket_path))
        assert second.returncode == 1 and f"a pool supervisor already listens at {socket_path}" in second.stderr
    assert len(events(model_log, event="teardown")) == 2


def utilserve_pool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "utilserve", "pool", SERVICE, *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


def test_utilserve_pool_says_what_it_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("UTILSERVE_POOL", None)
    env.pop("UTILSERVE_POOL_SOCKET", None)
    no_socket = utilserve_pool({**env, "UTILSERVE_POOL": "process"})
    assert no_socket.returncode == 1 and "no socket path; give --socket PATH" in no_socket.stderr
    no_models = utilserve_pool(env, "--socket", str(tmp_path / "pool.sock"))
    assert no_models.returncode == 1
    assert f"{SERVICE} declares no model with the process pool" in no_models.stderr
