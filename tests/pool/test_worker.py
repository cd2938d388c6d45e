"""A model worker's server run in this process, with each way of waiting for its sockets, spinning or not.

The process-pool tests run the server in spawned workers, where Linux's
one-shot epoll serves; here :class:`TakingTurns` (what other platforms get)
and a zero spin budget are served too, through the web side's own
:class:`ThreadWorkerConnection` and :class:`SharedWorkerConnection` connections.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from utilserve import Model
from utilserve.errors import HTTPError
from utilserve.pool.process import codec
from utilserve.pool.process.client.connections import SharedWorkerConnection, ThreadWorkerConnection
from utilserve.pool.process.sockets import ACCEPT_PAUSE_S, connect, listen
from utilserve.pool.process.spec import ModelSpec
from utilserve.pool.process.spin import SPIN_ENV, spin, spin_budget
from utilserve.pool.process.worker import server as worker
from utilserve.pool.process.worker.readiness import OneShot, Readiness, TakingTurns

from ..support.models.process import Answer, Item
from ..support.pool import ShortOfDescriptors

WAIT_S = 30.0


class Gated(Model):
    """Records its batches; a batch with items whose ``hold`` names a gate sets ``started[name]`` and waits for it."""

    Input, Output = Item, Answer
    max_batch_size = 2
    max_wait_ms = 20
    max_queue = 4

    def setup(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.batches: list[list[int]] = []

    def predict(self, batch: list[Item]) -> list[Answer]:
        self.batches.append([item.x for item in batch])
        for name in sorted({item.hold for item in batch if item.hold}):
            self.started[name].set()
            assert self.gates[name].wait(WAIT_S)
        return [Answer(x=item.x, worker=os.getpid()) for item in batch]


@dataclass
class Served:
    model: Gated
    path: str
    control: socket.socket
    thread: threading.Thread
    spin_s: float
    clients: list[SharedWorkerConnection | ThreadWorkerConnection] = field(default_factory=list)

    def own(self) -> ThreadWorkerConnection:
        own = ThreadWorkerConnection(
            "gated", os.getpid(), self.path, connect(self.path), lambda pid, path: None, self.spin_s
        )
        self.clients.append(own)
        return own

    def shared(self) -> SharedWorkerConnection:
        shared = SharedWorkerConnection("gated", os.getpid(), self.path, connect(self.path), lambda connection: None)
        self.clients.append(shared)
        shared.start()
        return shared

    def gate(self, name: str) -> str:
        """A new gate: items holding ``name`` keep their batch running until ``release(name)``."""
        self.model.gates[name] = threading.Event()
        self.model.started[name] = threading.Event()
        return name

    def release(self, name: str) -> None:
        self.model.gates[name].set()

    def hold(self, shared: SharedWorkerConnection, name: str = "held") -> Future[Any]:
        """An item held at a new gate ``name``, once the model runs it."""
        held = shared.submit(WAIT_S, codec.pack(Item(x=-1, hold=self.gate(name))))
        assert self.model.started[name].wait(WAIT_S)
        return held

    def close(self) -> None:
        for gate in self.model.gates.values():
            gate.set()
        self.control.close()
        self.thread.join(WAIT_S)
        for client in self.clients:
            client.close()


NEEDS_EPOLL = pytest.mark.skipif(not hasattr(select, "epoll"), reason="one-shot waits need epoll (Linux)")
WAYS = [
    pytest.param((OneShot, 200e-6), id="one-shot", marks=NEEDS_EPOLL),
    pytest.param((TakingTurns, 200e-6), id="taking-turns"),
    pytest.param((OneShot, 0.0), id="one-shot-no-spin", marks=NEEDS_EPOLL),
]


@pytest.fixture(params=WAYS)
def served(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    waits, spin_s = request.param
    monkeypatch.setattr(worker, "readiness", waits)
    model = Gated()
    model.setup()
    ours, theirs = socket.socketpair()
    path = str(tmp_path / "worker.sock")
    spec = ModelSpec("gated", f"{__name__}:Gated", 1, Gated.max_batch_size, Gated.max_wait_ms, Gated.max_queue)
    server = worker.Server(spec, model, theirs, listen(path), spin_s)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    served = Served(model, path, ours, thread, spin_s)
    yield served
    served.close()
    theirs.close()
    assert not thread.is_alive(), "the server did not stop when its supervisor hung up"


def test_a_lone_item_is_answered_and_two_connections_share_a_batch(served: Served) -> None:
    assert served.own().call(WAIT_S, codec.pack(Item(x=5))).x == 5
    first, second = served.shared(), served.shared()
    held = served.hold(first)
    queued = [shared.submit(WAIT_S, codec.pack(Item(x=x))) for shared, x in ((first, 1), (second, 2))]
    assert first.ping(WAIT_S) and second.ping(WAIT_S)
    served.release("held")
    assert [future.result(WAIT_S).x for future in (held, *queued)] == [-1, 1, 2]
    assert served.model.batches == [[5], [-1], [1, 2]]


def test_while_the_model_runs_pings_are_answered_and_a_full_queue_is_refused(served: Served) -> None:
    shared = served.shared()
    held = served.hold(shared)
    queued = [shared.submit(WAIT_S, codec.pack(Item(x=x))) for x in (1, 2, 3, 4)]
    assert shared.ping(WAIT_S)
    with pytest.raises(HTTPError) as refused:
        served.own().call(WAIT_S, codec.pack(Item(x=5)))
    assert (refused.value.status, refused.value.message) == (
        503,
        "model gated is overloaded: 4 requests already queued",
    )
    served.release("held")
    assert [future.result(WAIT_S).x for future in (held, *queued)] == [-1, 1, 2, 3, 4]


def test_under_saturation_the_next_full_batch_runs_while_the_last_ones_answers_go_out(served: Served) -> None:
    shared = served.shared()
    first = served.hold(shared, "first")
    second = [shared.submit(WAIT_S, codec.pack(item)) for item in (Item(x=1, hold=served.gate("second")), Item(x=2))]
    assert shared.ping(WAIT_S)
    served.release("first")
    assert served.model.started["second"].wait(WAIT_S)
    assert first.result(WAIT_S).x == -1, "answered while the next batch runs"
    assert not any(future.done() for future in second)
    served.release("second")
    assert [future.result(WAIT_S).x for future in second] == [1, 2]
    assert served.model.batches == [[-1], [1, 2]]


def test_stop_answers_queued_items_503_and_lets_the_running_batch_finish(served: Served) -> None:
    shared = served.shared()
    held = served.hold(shared)
    queued = shared.submit(WAIT_S, codec.pack(Item(x=1)))
    assert shared.ping(WAIT_S)
    served.control.close()
    with pytest.raises(HTTPError) as stopped:
        queued.result(WAIT_S)
    assert (stopped.value.status, stopped.value.message) == (503, "model gated is shutting down")
    served.release("held")
    assert held.result(WAIT_S).x == -1
    served.thread.join(WAIT_S)
    assert not served.thread.is_alive()


@pytest.mark.parametrize("waits", [pytest.param(OneShot, marks=NEEDS_EPOLL), TakingTurns])
def test_a_ready_socket_goes_to_one_waiting_thread_until_rearmed(waits: type[Readiness]) -> None:
    ready = waits()
    ours, theirs = socket.socketpair()
    ready.register(theirs.fileno(), lambda: True)
    ours.send(b"x")
    got: list[list[int]] = []

    def wait() -> None:
        with ready.turn():
            got.append([fd for fd, _ in ready.ready(0.3)])

    threads = [threading.Thread(target=wait) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    if waits is OneShot:
        assert sorted(got) == [[], [theirs.fileno()]], "one thread got the socket, the other nothing"
    else:
        assert got == [[theirs.fileno()]] * 2, "turn by turn, each thread saw the unread socket"
    ready.rearm(theirs.fileno())
    assert [fd for fd, _ in ready.ready(0)] == [theirs.fileno()]
    ready.close()
    ours.close()
    theirs.close()


def test_spin_budget_reads_microseconds_and_names_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPIN_ENV, raising=False)
    assert spin_budget() == 200e-6
    monkeypatch.setenv(SPIN_ENV, "0")
    assert spin_budget() == 0.0
    monkeypatch.setenv(SPIN_ENV, "1500")
    assert spin_budget() == 1500e-6
    for bad in ("-1", "fast", "1.5"):
        monkeypatch.setenv(SPIN_ENV, bad)
        with pytest.raises(ValueError) as error:
            spin_budget()
        assert str(error.value) == f"UTILSERVE_POOL_SPIN_US must be a whole number of microseconds >= 0, got {bad!r}"


def test_spin_stops_at_the_first_truthy_poll() -> None:
    polls = iter([[], [], ["ready"], ["late"]])
    assert spin(lambda: next(polls), WAIT_S) == ["ready"]
    assert spin(list, 0.0) == []


def test_a_worker_out_of_descriptors_pauses_accepting_instead_of_spinning(tmp_path: Path) -> None:
    model = Gated()
    model.setup()
    ours, theirs = socket.socketpair()
    path = str(tmp_path / "worker.sock")
    listener = ShortOfDescriptors(listen(path))
    spec = ModelSpec("gated", f"{__name__}:Gated", 1, Gated.max_batch_size, Gated.max_wait_ms, Gated.max_queue)
    server = worker.Server(spec, model, theirs, listener, 0.0)  # type: ignore[arg-type]  # a listener stand-in
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    own = ThreadWorkerConnection("gated", os.getpid(), path, connect(path), lambda pid, path: None, 0.0)
    try:
        time.sleep(ACCEPT_PAUSE_S / 2)
        assert listener.attempts == 1, "the worker kept trying a listener that stays ready"
        listener.short = False
        assert own.call(WAIT_S, codec.pack(Item(x=5))).x == 5
        assert listener.attempts == 2
    finally:
        own.close()
        ours.close()
        thread.join(WAIT_S)
        theirs.close()
    assert not thread.is_alive()
