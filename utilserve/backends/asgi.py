"""An ASGI request's incoming messages: its body for the core, and the moment its client goes away.

ASGI servers do not stop an app whose client has gone: they only say so
with ``http.disconnect``, to an app that is reading ``receive()``. The
request's own task reads its body from ``receive()`` as the core asks for
it; a disconnect before the body's end fails that reading (the core's
400, which a client that only stopped sending still reads). One task per
request reads ``receive()`` for the rest of the exchange, once the
request has run :data:`WATCH_AFTER_S` since it began or since its body
ended, or once a response streams. A disconnect it reads cancels the
request's task while the response has not started (an item queued for a
model leaves the queue), and is reported to a response being streamed
through the event :meth:`Incoming.listen` returns (its generator closes).
Body messages that reach that task before the core reads them wait in a
one-message queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from ..concurrency import running_loop
from ..errors import HTTPError

Message = Mapping[str, Any]

CLIENT_GONE = HTTPError(499, "the client went away before the answer")
"""What a request whose client left is answered, for the middleware and logs around the app (nginx's 499)."""
Receive = Callable[[], Awaitable[Message]]
WATCH_AFTER_S = 0.02
"""How long a request runs before its client's leaving is watched for (a task of its own reads ``receive()``)."""


class ClientGone(Exception):
    """The client went away before its request body was read."""


class Incoming:
    """Reads ``receive()`` on a task of its own from :meth:`watch` until :meth:`stop`."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._messages: asyncio.Queue[Message] | None = None
        self._gone: asyncio.Event | None = None
        self._request: asyncio.Task[Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._body_read = False
        self.responding = False
        """Set once the response has started: from then on a disconnect no longer cancels the request's task."""

    def watch(self, expects_continue: bool = False) -> None:
        """Start reading, on behalf of the task that calls this (the request's), unless it is answered first.

        Most requests are answered within :data:`WATCH_AFTER_S`, before a
        client could be seen to leave: they never pay for a reader. A
        request's body, and a streamed response, start it at once. A client
        that sent ``Expect: 100-continue`` waits to be asked for its body,
        and a server asks at the first ``receive()``: then watching starts
        after the body, so a request refused before it (404, 413) never
        asks.
        """
        self._request = asyncio.current_task(running_loop())
        if not expects_continue:
            self._watch_later()

    def _watch_later(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = running_loop().call_later(WATCH_AFTER_S, self.listen)

    def listen(self) -> asyncio.Event:
        """Read from now on; the event is set as the client leaves."""
        if self._reader is None:
            self._messages, self._gone = asyncio.Queue(1), asyncio.Event()
            self._reader = asyncio.ensure_future(self._read(self._messages, self._gone, self._body_read))
        assert self._gone is not None
        return self._gone

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None  # its ended frame holds this object: no cycle to leave to the collector

    @property
    def cancelled_request(self) -> bool:
        """Whether the request's task was cancelled here because its client went away."""
        return self._gone is not None and self._gone.is_set() and not self.responding

    async def body(self) -> AsyncIterator[bytes]:
        """The request body, as the server hands it over: read on this task, or from the watching task's queue."""
        if self._reader is not None:
            assert self._messages is not None
            receive: Receive = self._messages.get
        else:
            if self._timer is not None:
                self._timer.cancel()  # one reader of receive() at a time: this task, until the body's end
            receive = self._receive
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            yield message.get("body", b"")
            if not message.get("more_body", False):
                break
        self._body_read = True
        if self._reader is None:
            self._watch_later()

    async def _read(self, messages: asyncio.Queue[Message], gone: asyncio.Event, received: bool) -> None:
        while True:
            try:
                message = await self._receive()
            except Exception:  # noqa: BLE001 - a server that cannot say more: the client is as good as gone
                message = {"type": "http.disconnect"}
            if message["type"] != "http.disconnect":
                received = not message.get("more_body", False)
                await messages.put(message)
                continue
            gone.set()
            if not received:
                await messages.put(message)  # the body reader's error: a 400 that a half-closed client reads
            elif not self.responding and self._request is not None:
                self._request.cancel()
            return


async def closed_when_gone(chunks: AsyncIterator[bytes], receive: Receive) -> AsyncIterator[bytes]:
    """``chunks``, closed as soon as the client goes away: for a framework that sends a stream without watching.

    Read only once the response has begun, when what is left of the body no longer matters.
    """
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        while True:
            pulling = asyncio.ensure_future(anext(chunks))
            await asyncio.wait({pulling, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not pulling.done():
                pulling.cancel()
                await asyncio.wait({pulling})  # the generator is running until its cancelled step has ended
                return
            if pulling.exception() is not None and isinstance(pulling.exception(), StopAsyncIteration):
                return
            yield pulling.result()
    finally:
        gone.cancel()
        if (aclose := getattr(chunks, "aclose", None)) is not None:
            await aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
