"""Generator endpoints that hold their second chunk until the test lets them: is the first one sent at once?"""

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from utilserve import API, Event, EventStream, HTTPError, Service, api

from ..support.models.log import record
from ..support.models.streaming import Count, Counted, Counting

HOLD_S = 20.0


def released(gate: str) -> bool:
    return Path(gate).exists()


class RootAPI(API):
    @api.get
    def count(self, gate: str) -> Iterator[str]:
        """Yields "1", then "2" once the test has created the file ``gate`` ("gave up" if it never comes)."""
        yield "1\n"
        end = time.monotonic() + HOLD_S
        while not released(gate) and time.monotonic() < end:
            time.sleep(0.01)
        yield "2\n" if released(gate) else "gave up\n"

    @api.get
    async def acount(self, gate: str) -> AsyncIterator[dict]:
        """The same as NDJSON, from an async generator."""
        yield {"n": 1}
        end = time.monotonic() + HOLD_S
        while not released(gate) and time.monotonic() < end:
            await asyncio.sleep(0.01)
        yield {"n": 2 if released(gate) else "gave up", "pid": os.getpid()}

    @api.get
    async def forever(self, record: str) -> AsyncIterator[str]:
        """Ticks until the client goes; then its ``finally`` writes the file ``record``."""
        try:
            while True:
                yield "tick\n"
                await asyncio.sleep(0.01)
        finally:
            Path(record).write_text("closed")

    @api.get
    def events(self, gate: str, fail: bool = False) -> EventStream:
        """An event, then (once ``gate`` exists) another, or an error; pings every 50 ms meanwhile."""

        def items() -> Iterator[Event]:
            yield Event({"n": 1}, event="tick", id="1")
            end = time.monotonic() + HOLD_S
            while not released(gate) and time.monotonic() < end:
                time.sleep(0.01)
            if fail:
                raise HTTPError(409, "the second event conflicts")
            yield Event("two\nlines", id="2")

        return EventStream(items(), ping_s=0.05)

    @api.get
    def ticks(self, record: str) -> EventStream:
        """Events from a sync generator until the client goes; then its ``finally`` writes the file ``record``."""

        def items() -> Iterator[dict]:
            try:
                while True:
                    yield {"tick": True}
                    time.sleep(0.01)
            finally:
                Path(record).write_text("closed")

        return EventStream(items())

    @api.post
    async def queued(self, item: Count) -> AsyncIterator[Counted]:
        """The model's outputs; records when the item is queued, and what stops its stream early."""
        record(model="counting", queued=item.tag)  # the item is queued before this task next awaits
        try:
            async for output in counting.astream(item):
                yield output
        except BaseException as stopped:
            record(model="counting", closed=item.tag, by=type(stopped).__name__)
            raise


class OneAtATime(Counting):
    max_batch_size = 1


service = Service(__name__, name="streaming", api=RootAPI, route="/api")
counting = service.model(OneAtATime, route="/counting")
app = service.application()
