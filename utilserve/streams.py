"""Generator endpoints and event streams as streamed responses.

The first item is taken before the response starts, so that an error up to
it is answered as the error contract says, and so that it names the
stream's media type (str: text, bytes: binary, anything else: NDJSON; an
:class:`~utilserve.events.EventStream` is always ``text/event-stream``).
Every other item is sent as it is produced. An error after the first item
can no longer change the status: it is logged, an event stream sends it as
``event: error`` and ends, and a raw stream ends early, so that the client
sees a body cut short rather than a clean end. An event stream that has
nothing to send for ``ping_s`` sends a comment, so that proxies keep it open.

A sync iterator never runs on an event loop: on an async server each of
its steps runs on the handler's threads. An async iterator under a WSGI
server runs on the thread's own loop. Either way the generator is closed
(its ``finally`` runs) when the response ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

from .concurrency import run_sync
from .errors import HTTPError
from .events import HEADERS, HEARTBEAT, MEDIA_TYPE, EventStream, encode, error_event
from .http import Response, chunk, chunk_type
from .pool.outputs import Outputs
from .pool.stream import END

logger = logging.getLogger("utilserve")


Items = Iterable[Any] | AsyncIterable[Any]
SyncPuller = tuple[Callable[[], Any], Callable[[], None]]
AsyncPuller = tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]


def is_stream(result: Any) -> bool:
    """Whether an endpoint's return value is streamed: a generator, a streaming model's outputs, an event stream."""
    return inspect.isgenerator(result) or inspect.isasyncgen(result) or isinstance(result, (EventStream, Outputs))


def sync_stream(result: Any, where: str) -> Response:
    """The streamed response of an endpoint's return value on a sync (WSGI) server."""
    items = result.items if isinstance(result, EventStream) else result
    pull, close = _sync_puller(items)
    first = pull()
    if isinstance(result, EventStream):
        response = _event_response()
        if isinstance(items, Outputs):
            response.chunks = _timed_events(first, items.next_within, items.close, result.ping_s, where)
        else:
            response.chunks = _sync_events(first, pull, close, result.ping_s, where)
        return response
    if first is END:
        close()
        return Response(b"")
    response = Response.stream((), chunk_type(first))
    response.chunks = _sync_chunks(first, pull, close, where)
    return response


async def async_stream(result: Any, executor: Executor, where: str) -> Response:
    """The streamed response of an endpoint's return value on an async (ASGI) server."""
    items = result.items if isinstance(result, EventStream) else result
    pull, close = _async_puller(items, executor)
    first = await pull()
    if isinstance(result, EventStream):
        response = _event_response()
        response.chunks = _async_events(first, pull, close, result.ping_s, where)
        return response
    if first is END:
        await close()
        return Response(b"")
    response = Response.stream((), chunk_type(first))
    response.chunks = _async_chunks(first, pull, close, where)
    return response


def for_sync_server(response: Response) -> Response:
    """``response`` with chunks a WSGI server can iterate: an async stream runs on this thread's loop."""
    if isinstance(response.chunks, AsyncIterator):
        pull, close = _sync_puller(response.chunks)
        response.chunks = _sync_chunks(pull(), pull, close, "a streamed Response")
    return response


async def for_async_server(response: Response, executor: Executor) -> Response:
    """``response`` with chunks an ASGI server can await: each step of a sync stream runs on ``executor``."""
    if isinstance(response.chunks, Iterator):
        pull, close = _async_puller(response.chunks, executor)
        response.chunks = _async_chunks(await pull(), pull, close, "a streamed Response")
    return response


def _event_response() -> Response:
    return Response.stream((), MEDIA_TYPE, headers=HEADERS)


def _sync_puller(items: Items) -> SyncPuller:
    if isinstance(items, AsyncIterable):
        iterator = aiter(items)
        aclose = getattr(iterator, "aclose", None)
        return (lambda: run_sync(anext(iterator, END))), (lambda: run_sync(aclose()) if aclose else None)
    sync_iterator = iter(items)
    return (lambda: next(sync_iterator, END)), getattr(sync_iterator, "close", _nothing)


def _async_puller(items: Items, executor: Executor) -> AsyncPuller:
    if isinstance(items, AsyncIterable):
        iterator = aiter(items)
        aclose = getattr(iterator, "aclose", None)
        return (lambda: anext(iterator, END)), (aclose or _anothing)
    sync_iterator = iter(items)
    close = getattr(sync_iterator, "close", _nothing)
    pulling: list[Future[Any]] = []
    context = contextvars.copy_context()  # the request's: a step may call a model, which reads its origin

    def step() -> Any:
        return next(sync_iterator, END)

    def pull() -> Awaitable[Any]:
        pulling[:] = [executor.submit(context.run, step)]
        return asyncio.wrap_future(pulling[0])

    async def close_when_idle() -> None:
        """A generator cannot be closed while a thread runs it: once a pull still running returns, close it."""
        if pulling and not pulling[0].done():
            pulling[0].add_done_callback(lambda _: executor.submit(close))
        else:
            await asyncio.wrap_future(executor.submit(close))

    return pull, close_when_idle


def _nothing() -> None:
    return None


async def _anothing() -> None:
    return None


def _failed(where: str) -> None:
    logger.exception("the stream of %s failed after it began; its response ends early", where)


def _error_body(error: Exception) -> bytes:
    return (error if isinstance(error, HTTPError) else HTTPError(500, "Internal Server Error")).body()


def _sync_chunks(first: Any, pull: Callable[[], Any], close: Callable[[], None], where: str) -> Iterator[bytes]:
    try:
        item = first
        while item is not END:
            yield chunk(item)
            item = pull()
    except Exception:
        _failed(where)
        raise
    finally:
        close()


async def _async_chunks(
    first: Any, pull: Callable[[], Awaitable[Any]], close: Callable[[], Awaitable[Any]], where: str
) -> AsyncIterator[bytes]:
    try:
        item = first
        while item is not END:
            yield chunk(item)
            item = await pull()
    except Exception:
        _failed(where)
        raise
    finally:
        await close()


def _sync_events(
    first: Any, pull: Callable[[], Any], close: Callable[[], None], ping_s: float, where: str
) -> Iterator[bytes]:
    """Events as they come, and a heartbeat when none came for ``ping_s``: a thread pulls, this one waits."""
    if first is END:
        close()
        return
    produced: queue.Queue[Any] = queue.Queue(maxsize=1)
    stopping = threading.Event()

    def produce() -> None:
        try:
            while not stopping.is_set() and (item := pull()) is not END:
                produced.put(item)
            last: Any = END
        except Exception as error:  # noqa: BLE001 - handed to the sending thread, which answers it
            last = error
        try:
            if not stopping.is_set():  # once stopped, nobody takes it: a put on the full queue would never return
                produced.put(last)
        finally:
            close()

    def next_within(timeout: float) -> Any:
        try:
            item = produced.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if isinstance(item, Exception):
            raise item
        return item

    def stop() -> None:
        stopping.set()
        while not produced.empty():  # a producer blocked on a full queue sees the stop
            produced.get_nowait()

    threading.Thread(target=produce, name="utilserve-events", daemon=True).start()
    yield from _timed_events(first, next_within, stop, ping_s, where)


def _timed_events(
    first: Any, next_within: Callable[[float], Any], close: Callable[[], None], ping_s: float, where: str
) -> Iterator[bytes]:
    """Events from a source that waits with a bound (``TimeoutError`` when none came), heartbeats between them.

    A streaming model's outputs wait so themselves; any other iterator
    waits through a thread that pulls it (:func:`_sync_events`).
    """
    try:
        if first is END:
            return
        yield encode(first)
        while True:
            try:
                item = next_within(ping_s)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if item is END:
                return
            yield encode(item)
    except Exception as error:  # noqa: BLE001 - the status is sent: the error goes out as an error event
        _logged(error, where)
        yield error_event(_error_body(error))
    finally:
        close()


async def _async_events(
    first: Any, pull: Callable[[], Awaitable[Any]], close: Callable[[], Awaitable[Any]], ping_s: float, where: str
) -> AsyncIterator[bytes]:
    """Events as they come, and a heartbeat when none came for ``ping_s``."""
    pending: asyncio.Future[Any] | None = None
    try:
        if first is END:
            return
        yield encode(first)
        pending = asyncio.ensure_future(pull())
        while True:
            done, _ = await asyncio.wait({pending}, timeout=ping_s)
            if not done:
                yield HEARTBEAT
                continue
            item = pending.result()
            if item is END:
                return
            yield encode(item)
            pending = asyncio.ensure_future(pull())
    except Exception as error:  # noqa: BLE001 - the status is sent: the error goes out as an error event
        _logged(error, where)
        yield error_event(_error_body(error))
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.wait({pending})  # an async generator is running until its cancelled step has ended
        await close()


def _logged(error: Exception, where: str) -> None:
    logger.error("the event stream of %s failed after it began; it ends with an error event", where, exc_info=error)
