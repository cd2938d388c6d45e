"""A model worker's server run in this process, with each way of waiting for its sockets, spinning or not.

The process-pool tests run the server in spawned workers, where Linux's
one-shot epoll serves; here :class:`TakingTurns` (what other platforms get)
and a zero spin budget are served too, through the web side's own
:class:`Direct` and :class:`Channel` connections.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from utilserve import Model
from utilserve.api.errors import HTTPError
from utilserve.pool import protocol, worker
from utilserve.pool.channel import Channel, Direct
from utilserve.pool.launch import connect
from utilserve.pool.readiness import OneShot, Readiness, TakingTurns
from utilserve.pool.rendezvous import listen
from utilserve.pool.spec import ModelSpec
from utilserve.pool.spin import SPIN_ENV, spin, spin_budget

from .apps.shared_models import Answer, Item

WAIT_S = 30.0


class Gated(Model):
    """Records its batches; a batch with a ``hold`` item sets ``holding`` and waits for ``gate``."""

    Input, Output = Item, Answer
    max_batch_size = 4
    max_wait_ms = 20
    max_queue = 2

    def setup(self) -> None:
        self.gate = threading.Event()
        self.holding = threading.Event()
        self.batches: list[list[int]] = []

    def predict(self, batch: list[Item]) -> list[Answer]:
        self.batches.append([item.x for item in batch])
        if any(item.hold for item in batch):
            self.holding.set()
            assert self.gate.wait(WAIT_S)
        return [Answer(x=item.x, worker=os.getpid()) for item in batch]


@dataclass
class Served:
    model: Gated
    path: str
    control: socket.socket
    thread: threading.Thread

    def direct(self, spin_s: float = 0.0) -> Direct:
        return Direct("gated", os.getpid(), self.path, connect(self.path), lambda pid, path: None, spin_s)

    def channel(self) -> Channel:
        channel = Channel("gated", os.getpid(), self.path, connect(self.path), lambda channel: None)
        channel.start()
        return channel

    def hold(self, channel: Channel) -> Future[Any]:
        """A held item's future, once the model runs it."""
        held = channel.submit(WAIT_S, protocol.pack(Item(x=-1, hold="yes")))
        assert self.model.holding.wait(WAIT_S)
        return held


WAYS = {"one-shot": (OneShot, 200e-6), "taking-turns": (TakingTurns, 200e-6), "no-spin": (OneShot, 0.0)}


@pytest.fixture(params=list(WAYS))
def served(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    waits, spin_s = WAYS[request.param]
    monkeypatch.setattr(worker, "readiness", waits)
    model = Gated()
    model.setup()
    ours, theirs = socket.socketpair()
    path = str(tmp_path / "worker.sock")
    spec = ModelSpec("gated", "tests.test_pool_worker:Gated", 1, Gated.max_batch_size, Gated.max_wait_ms, Gated.max_queue)
    server = worker.Server(spec, model, theirs, listen(path), spin_s)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield Served(model, path, ours, thread)
    model.gate.set()
    ours.close()
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the server did not stop when its supervisor hung up"


def test_a_lone_item_is_answered_and_two_connections_share_a_batch(served: Served) -> None:
    assert served.direct(spin_s=200e-6).call(WAIT_S, protocol.pack(Item(x=5))).x == 5
    first, second = served.channel(), served.channel()
    held = served.hold(first)
    queued = [channel.submit(WAIT_S, protocol.pack(Item(x=x))) for channel, x in ((first, 1), (second, 2))]
    assert first.ping(WAIT_S) and second.ping(WAIT_S)
    served.model.gate.set()
    assert [future.result(WAIT_S).x for future in (held, *queued)] == [-1, 1, 2]
    assert served.model.batches[-1] == [1, 2]


def test_while_the_model_runs_pings_are_answered_and_a_full_queue_is_refused(served: Served) -> None:
    channel = served.channel()
    held = served.hold(channel)
    queued = [channel.submit(WAIT_S, protocol.pack(Item(x=x))) for x in (1, 2)]
    assert channel.ping(WAIT_S)
    with pytest.raises(HTTPError) as refused:
        served.direct().call(WAIT_S, protocol.pack(Item(x=3)))
    assert (refused.value.status, refused.value.message) == (503, "model gated is overloaded: 2 requests already queued")
    served.model.gate.set()
    assert [future.result(WAIT_S).x for future in (held, *queued)] == [-1, 1, 2]


def test_stop_answers_queued_items_503_and_lets_the_running_batch_finish(served: Served) -> None:
    channel = served.channel()
    held = served.hold(channel)
    queued = channel.submit(WAIT_S, protocol.pack(Item(x=1)))
    assert channel.ping(WAIT_S)
    served.control.close()
    with pytest.raises(HTTPError) as stopped:
        queued.result(WAIT_S)
    assert (stopped.value.status, stopped.value.message) == (503, "model gated is shutting down")
    served.model.gate.set()
    assert held.result(WAIT_S).x == -1
    served.thread.join(WAIT_S)
    assert not served.thread.is_alive()


@pytest.mark.parametrize("waits", [OneShot, TakingTurns])
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
