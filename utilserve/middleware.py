"""Middleware: functions that wrap the neutral request -> response call, on every backend alike.

A middleware takes the request and ``call_next`` and returns a response:
``def m(request, call_next)`` on a sync server's thread, ``async def m(request,
call_next)`` awaiting it. Either kind runs on either kind of server: a sync
one on an event loop goes to a thread, and an async one on a thread runs on
that thread's own loop, each with the rest of the chain. ``call_next`` always
returns a response, errors included, and a middleware that raises becomes
the error contract's answer, so every outer layer sees a response.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import cast

from .concurrency import run_sync
from .http import Request, Response

CallNext = Callable[[Request], Response]
AsyncCallNext = Callable[[Request], Awaitable[Response]]
SyncMiddleware = Callable[[Request, CallNext], Response]
AsyncMiddleware = Callable[[Request, AsyncCallNext], Awaitable[Response]]
OnError = Callable[[Request, Exception], Response]


@dataclass(frozen=True)
class Middleware:
    """One layer, in a sync form, an async form, or both (then no thread or loop is crossed)."""

    sync: SyncMiddleware | None = None
    asynchronous: AsyncMiddleware | None = None

    @classmethod
    def of(cls, function: SyncMiddleware | AsyncMiddleware) -> Middleware:
        if not callable(function):
            raise TypeError(f"a middleware must be a function (request, call_next) -> Response, got {function!r}")
        if len(inspect.signature(function).parameters) != 2:
            raise TypeError(f"a middleware takes two parameters (request, call_next): {function!r} does not")
        if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(type(function).__call__):
            return cls(asynchronous=cast(AsyncMiddleware, function))
        return cls(sync=cast(SyncMiddleware, function))


@dataclass(frozen=True)
class Chain:
    """The layers around a request's innermost call, outermost first.

    ``inner`` and ``ainner`` are that call on a thread and on a loop;
    ``for_sync`` and ``for_async`` turn a response's body into one the
    server can send, when a layer of the other kind made it.
    """

    layers: Sequence[Middleware]
    on_error: OnError
    executor: Executor
    for_sync: Callable[[Response], Response]
    for_async: Callable[[Response], Awaitable[Response]]

    def call(self, request: Request, inner: CallNext, ainner: AsyncCallNext, index: int = 0) -> Response:
        """On a thread; from the first async-only layer on, the rest runs on this thread's own loop."""
        if index == len(self.layers):
            return inner(request)
        layer = self.layers[index]
        if layer.sync is None:
            return self.for_sync(run_sync(self.acall(request, inner, ainner, index)))
        try:
            return layer.sync(request, lambda next_request: self.call(next_request, inner, ainner, index + 1))
        except Exception as error:  # noqa: BLE001 - a failing middleware becomes the error contract's answer
            return self.on_error(request, error)

    async def acall(self, request: Request, inner: CallNext, ainner: AsyncCallNext, index: int = 0) -> Response:
        """On an event loop; a sync-only layer runs on a thread of ``executor``, and its ``call_next`` comes back
        to the loop, where the request's body is read.

        That executor is the middleware's own: a layer's thread waits for the
        rest of the chain, which may need a thread for a sync endpoint, and
        sharing one pool, a pool full of such layers would wait forever.
        """
        if index == len(self.layers):
            return await ainner(request)
        layer = self.layers[index]
        try:
            if layer.asynchronous is not None:
                return await layer.asynchronous(
                    request, lambda next_request: self.acall(next_request, inner, ainner, index + 1)
                )
            assert layer.sync is not None
            sync_layer = layer.sync
            loop = asyncio.get_running_loop()

            def on_thread() -> Response:
                def call_next(next_request: Request) -> Response:
                    rest = self.acall(next_request, inner, ainner, index + 1)
                    return asyncio.run_coroutine_threadsafe(rest, loop).result()

                return sync_layer(request, call_next)

            call = partial(contextvars.copy_context().run, on_thread)
            return await self.for_async(await loop.run_in_executor(self.executor, call))
        except Exception as error:  # noqa: BLE001 - a failing middleware becomes the error contract's answer
            return self.on_error(request, error)
