"""Models and helpers shared by the pool tests (this module holds no tests).

``Echo`` answers ``x`` back and records every batch it sees. An item with
``block=True`` makes its batch wait for ``gate``, which lets a test hold a
worker busy and know exactly what is queued behind it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from pydantic import BaseModel

from utilserve.api.errors import HTTPError
from utilserve.pool import Model

WAIT_S = 10.0
"""Upper bound for anything a test waits on, so a bug fails instead of hanging."""


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
            assert type(self).gate.wait(WAIT_S), "test never opened the gate"
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
    return [x for batch in model.batches for x in batch]


def outcome(call: Any, *args: Any, **kwargs: Any) -> Any:
    """The call's result, or the HTTPError it raised."""
    try:
        return call(*args, **kwargs)
    except HTTPError as error:
        return error
