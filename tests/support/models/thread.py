"""Models for the thread pool, the default: ``Echo`` for the tests in this process, the rest served over HTTP.

``Echo`` answers ``x`` back and records every batch it sees; :func:`echo`
makes a fresh subclass with records of its own for each test. An item with
``block=True`` makes its batch wait for ``gate``, which lets a test hold a
worker busy and know exactly what is queued behind it.

``Batching``, ``Slow``, ``Picky`` and ``SlowSetup`` double a number and
record what they see in ``$MODEL_LOG``; tests/apps/pool_thread.py serves them.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, ClassVar

from pydantic import BaseModel

from utilserve import Model

from .log import record

GATE_WAIT_S = 10.0
"""How long a blocked batch waits for its test to open the gate, so a bug fails instead of hanging."""


class EchoIn(BaseModel):
    x: int
    block: bool = False


class EchoOut(BaseModel):
    x: int


class Echo(Model):
    Input = EchoIn
    Output = EchoOut
    cost_s: ClassVar[float] = 0.0
    batches: ClassVar[list[list[int]]]
    threads: ClassVar[set[str]]
    started: ClassVar[threading.Event]
    gate: ClassVar[threading.Event]

    def predict(self, batch: list[EchoIn]) -> list[Any]:
        type(self).batches.append([item.x for item in batch])
        type(self).threads.add(threading.current_thread().name)
        if any(item.block for item in batch):
            type(self).started.set()
            assert type(self).gate.wait(GATE_WAIT_S), "test never opened the gate"
        if self.cost_s:
            time.sleep(self.cost_s)
        return self.answer(batch)

    def answer(self, batch: list[EchoIn]) -> list[Any]:
        """What ``predict`` returns once recorded; tests override it to misbehave."""
        return [EchoOut(x=item.x) for item in batch]


def echo(base: type[Echo] = Echo, **settings: Any) -> type[Echo]:
    """A fresh ``Echo`` subclass with its own records and the given settings."""
    state = {
        "batches": [],
        "threads": set(),
        "started": threading.Event(),
        "gate": threading.Event(),
    }
    return type(base.__name__, (base,), {**state, **settings})


def seen(model: type[Echo]) -> list[int]:
    """Every ``x`` the model saw, batch after batch."""
    return [x for batch in model.batches for x in batch]


class Number(BaseModel):
    x: int


class Doubled(BaseModel):
    y: int


class Doubling(Model):
    """Doubles ``x``: the least a model route can serve."""

    Input, Output = Number, Doubled

    def predict(self, batch: list[Number]) -> list[Doubled]:
        return [Doubled(y=2 * item.x) for item in batch]


class Batching(Model):
    """10 ms per batch; records every batch's size."""

    Input, Output = Number, Doubled
    max_batch_size = 8
    max_wait_ms = 20

    def predict(self, batch: list[Number]) -> list[Doubled]:
        record(model="batching", size=len(batch))
        time.sleep(0.010)
        return [Doubled(y=item.x * 2) for item in batch]


LONG = 1000
"""Items from this number up take ``Slow`` 2 s: long enough to kill its worker surely in the middle."""


class Slow(Model):
    """One item at a time, 50 ms each (2 s from ``LONG`` up), room for 8 in the queue."""

    Input, Output = Number, Doubled
    max_batch_size = 1
    max_queue = 8
    timeout_s = 30

    def predict(self, batch: list[Number]) -> list[Doubled]:
        record(model="slow", seen=[item.x for item in batch])
        time.sleep(2.0 if batch[0].x >= LONG else 0.050)
        return [Doubled(y=item.x * 2) for item in batch]


class TooBig(Exception):
    pass


class Picky(Model):
    """Fails negative items one by one, and a whole batch holding 999."""

    Input, Output = Number, Doubled
    max_batch_size = 16
    max_wait_ms = 50
    errors = {ValueError: 400, TooBig: (409, "999 is too big")}

    def predict(self, batch: list[Number]) -> list[Doubled | Exception]:
        if any(item.x == 999 for item in batch):
            raise TooBig()
        return [ValueError(f"{item.x} is negative") if item.x < 0 else Doubled(y=item.x * 2) for item in batch]


class SlowSetup(Model):
    """Takes $SETUP_SECONDS to load; records setup and teardown."""

    Input, Output = Number, Doubled

    def setup(self) -> None:
        time.sleep(float(os.environ.get("SETUP_SECONDS", "0")))
        record(model="slow_setup", event="setup")

    def predict(self, batch: list[Number]) -> list[Doubled]:
        return [Doubled(y=item.x * 2) for item in batch]

    def teardown(self) -> None:
        record(model="slow_setup", event="teardown")


class Hold(Model):
    """Holds each batch of up to 16 for $HOLD_MS (1 s by default): requests stay in flight while a server stops."""

    Input, Output = Number, Doubled
    max_batch_size = 16
    max_wait_ms = 20

    def predict(self, batch: list[Number]) -> list[Doubled]:
        time.sleep(int(os.environ.get("HOLD_MS", "1000")) / 1000)
        return [Doubled(y=item.x * 2) for item in batch]
