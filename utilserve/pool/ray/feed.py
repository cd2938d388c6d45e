"""The web side of a streamed Ray call: a replica's outputs into the reader's bounded ``Stream``.

Ray Serve gives ``stream=True`` calls no backpressure of their own: its
router starts them without ``_generator_backpressure_num_objects``, and the
replica's generator runs ahead of the caller. What bounds one item's
backlog here is its reader: the loop pulls the next output from Ray only
once the ``Stream`` has room, and a reader that takes nothing for the
model's ``timeout_s`` while the stream is full is dropped as stalled, as
the ``Stepper`` drops one in the thread pool; that cancels the Ray call, and
the replica's steps let the item go.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from ..stepping import stalled
from ..stream import Stream


class Feed:
    """One item's ``Stream``, filled on an event loop that waits for room rather than buffering."""

    def __init__(self, name: str, stall_s: float) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._name = name
        self._stall_s = stall_s
        self._room = asyncio.Event()
        self.stream = Stream(on_room=self._wake)

    async def put(self, output: Any) -> None:
        """On the loop: wait until the reader has room (or left), then put ``output``; raise the stall's 504."""
        self._loop = asyncio.get_running_loop()  # before looking for room: a reader that frees some wakes it
        if not (self.stream.has_room or self.stream.closed):  # the stall's timer only for a put that must wait
            try:
                async with asyncio.timeout(self._stall_s):
                    while not (self.stream.has_room or self.stream.closed):
                        self._room.clear()  # a wake-up from now on runs after this, on this loop
                        await self._room.wait()
            except TimeoutError:
                raise stalled(self._name) from None
        self.stream.put(output)

    def _wake(self) -> None:
        """From the reader's thread: it took from a full stream, or closed it."""
        if self._loop is None:  # nothing was put yet, so nothing waits
            return
        with suppress(RuntimeError):  # the loop closed: the pool stopped and ended the stream
            self._loop.call_soon_threadsafe(self._room.set)
