"""Models for the process pool, whose supervisor's workers import them by name.

Each records in ``$MODEL_LOG`` its ``setup`` (the worker's pid, and its
parent's: the supervisor) and, per batch, the items and the web process
each item came from. An item with ``hold`` set makes its batch wait until
that file exists, so a test can keep a worker busy and know what queues
behind it.
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

from pydantic import BaseModel

from utilserve import Model
from utilserve.pool.model import ErrorMapping

from .log import record

HOLD_LIMIT_S = 60.0


def wait_for(path: str) -> None:
    end = time.monotonic() + HOLD_LIMIT_S
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"the test never created {path}")
        time.sleep(0.005)


class Item(BaseModel):
    x: int
    pid: int = 0
    hold: str = ""
    sleep_ms: int = 0


class Answer(BaseModel):
    x: int
    worker: int


class Echo(Model):
    """Answers ``x`` with the worker's pid; ``$SETUP_GATE`` (a path) holds ``setup()`` until it exists."""

    Input, Output = Item, Answer
    max_batch_size = 64
    max_wait_ms = 20
    max_queue = 256
    timeout_s = 60

    def setup(self) -> None:
        gate = os.environ.get("SETUP_GATE")
        if gate:
            wait_for(gate)
        record(event="setup")

    def predict(self, batch: list[Item]) -> list[Answer]:
        record(event="batch", xs=[item.x for item in batch], webs=[item.pid for item in batch])
        for hold in sorted({item.hold for item in batch if item.hold}):
            wait_for(hold)
        cost = max(item.sleep_ms for item in batch)
        if cost:
            time.sleep(cost / 1000)
        return [Answer(x=item.x, worker=os.getpid()) for item in batch]

    def teardown(self) -> None:
        record(event="teardown")


class Narrow(Echo):
    """One item per batch and room for two in the queue."""

    max_batch_size = 1
    max_queue = 2


class Quitter(Echo):
    """Raises ``SystemExit`` (past ``Exception``) for a negative item."""

    def predict(self, batch: list[Item]) -> list[Answer]:
        if any(item.x < 0 for item in batch):
            raise SystemExit("quitting")
        return super().predict(batch)


class TooBig(Exception):
    pass


class Picky(Model):
    """Fails negative items one by one, and a whole batch holding 999."""

    Input, Output = Item, Answer
    max_batch_size = 16
    max_wait_ms = 50
    errors: ClassVar[ErrorMapping] = {ValueError: 400, TooBig: (409, "999 is too big")}

    def predict(self, batch: list[Item]) -> list[Answer | Exception]:
        if any(item.x == 999 for item in batch):
            raise TooBig()
        return [
            ValueError(f"{item.x} is negative") if item.x < 0 else Answer(x=item.x, worker=os.getpid())
            for item in batch
        ]


class Broken(Echo):
    def setup(self) -> None:
        raise OSError("weights.bin not found")


class Blob(BaseModel):
    data: bytes


class Parts(BaseModel):
    """Bytes in a list beside a vector of floats, the shape of many models' outputs."""

    parts: list[bytes] = []
    scores: list[float] = []


class Blobs(BaseModel):
    blobs: list[Blob]


class Digest(BaseModel):
    size: int
    head: bytes
    echo: bytes = b""


class Measure(Model):
    """Answers a blob's size and first bytes, and the blob itself when asked to (``echo``)."""

    Input, Output = Blob, Digest
    max_batch_size = 4
    max_wait_ms = 1

    def predict(self, batch: list[Blob]) -> list[Digest]:
        return [Digest(size=len(b.data), head=b.data[:8], echo=b.data if b.data[:4] == b"ECHO" else b"") for b in batch]
