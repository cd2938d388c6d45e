"""``ModelHandle``: what endpoints call to reach a model, whatever pool serves it."""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from time import monotonic
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from ..errors import HTTPError, validation_details
from ..telemetry import context
from ..telemetry.context import Origin
from .base import Pool, PoolOptions, not_ready
from .loading import Loading
from .model import Model
from .observed import CANCELLED, OK, ended, outcome_of
from .outputs import Outputs
from .stream import END, Stream

POOLS: dict[str, str] = {
    "thread": "utilserve.pool.thread:ThreadPool",
    "process": "utilserve.pool.process:ProcessPool",
    "ray": "utilserve.pool.ray:RayPool",
}
"""Pool kinds by name, imported on first use (Ray is an optional dependency)."""


def pool_class(kind: str) -> Callable[[type[Model], str, int, PoolOptions], Pool]:
    module_name, _, attribute = POOLS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"pool kind {kind!r} is unavailable: {exc}") from exc
    found: Callable[[type[Model], str, int, PoolOptions], Pool] = getattr(module, attribute)
    return found


class ModelHandle:
    """Validates inputs, enforces the deadline and turns pool outcomes into results.

    ``predict`` blocks (for sync handlers); ``apredict`` awaits (for async
    ones). A streaming model is read with ``stream`` (an iterator) or
    ``astream`` (an async one) instead, which yield its ``Output``s; the
    deadline bounds the wait for the first. All return the model's
    ``Output`` or raise ``HTTPError``: 422 for
    invalid input, 503 when the pool is not ready or its queue is full, 504
    when the deadline passes, the model's mapped status (500 by default) when
    it fails. An item that comes while the pool loads (a fresh worker
    process, a restarted pool) waits for it within its deadline rather than
    failing: a server's first requests are not lost to a cold start. Usable
    as a context manager that starts, waits for readiness and stops.

    ``strict`` validates inputs in pydantic's strict mode unless the model
    says otherwise (``Model.strict``); the effective choice is ``self.strict``,
    which the model's route also follows.
    """

    def __init__(
        self,
        model_cls: type[Model],
        name: str | None = None,
        workers: int = 1,
        pool: str = "thread",
        options: PoolOptions = PoolOptions(),
        strict: bool = False,
    ) -> None:
        if not (isinstance(model_cls, type) and issubclass(model_cls, Model)):
            raise TypeError(f"ModelHandle needs a Model subclass, got {model_cls!r}")
        if model_cls.predict is Model.predict and not model_cls.streams():
            raise TypeError(f"{model_cls.__name__} implements neither predict(self, batch) nor step(self, states)")
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if pool not in POOLS:
            raise ValueError(f"unknown pool kind {pool!r}; supported: {', '.join(sorted(POOLS))}")
        self.model_cls = model_cls
        self.name = name or model_cls.__name__
        self.workers = workers
        self.pool_kind = pool
        self.options = options
        self.strict = strict if model_cls.strict is None else model_cls.strict
        if pool == "process":
            from .process.spec import importable_target

            importable_target(model_cls, self.name)  # fail where the model is declared, not when it starts
        self._pool: Pool | None = None
        self._loading: Loading | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start loading the workers (returns at once); a no-op while started."""
        with self._lock:
            if self._pool is None:
                self._pool = pool_class(self.pool_kind)(self.model_cls, self.name, self.workers, self.options)
                self._loading = Loading(self._pool, self.name, self.model_cls.max_queue)
                self._pool.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the pool (queued requests get 503); ``start()`` may follow."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop(timeout)

    @property
    def ready(self) -> bool:
        pool = self._pool
        return pool is not None and pool.ready

    @property
    def error(self) -> BaseException | None:
        """Why loading failed, if it did."""
        pool = self._pool
        return None if pool is None else pool.error

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until loaded (True) or ``timeout`` (False); raise RuntimeError if setup failed."""
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"model {self.name} is not started; call start() first")
        return pool.wait_ready(timeout)

    def predict(self, item: Any, timeout: float | None = None) -> Any:
        """Run ``item`` (an ``Input`` or a dict) through the model and wait for its ``Output``."""
        origin = context.current()
        payload, wait = self._prepare(item, timeout, streaming=False)
        with self._counted(ok=True):
            pool, loading = self._pool_and_loading()
            end = monotonic() + wait
            left = self._left(end, wait) if loading.wait(wait) else wait
            try:
                return pool.call(payload, left, origin)
            except TimeoutError:
                raise self._timed_out(wait) from None

    async def apredict(self, item: Any, timeout: float | None = None) -> Any:
        """Like :meth:`predict`, awaiting instead of blocking; cancelling drops a queued item."""
        origin = context.current()
        payload, wait = self._prepare(item, timeout, streaming=False)
        with self._counted(ok=True):
            pool, loading = self._pool_and_loading()
            end = monotonic() + wait
            left = self._left(end, wait) if await loading.await_loaded(wait) else wait
            future = pool.submit(payload, left, origin)
            try:
                async with asyncio.timeout(left):
                    return await asyncio.wrap_future(future)
            except TimeoutError:
                raise self._timed_out(wait) from None

    def stream(self, item: Any, timeout: float | None = None) -> Outputs:
        """A streaming model's outputs for ``item``, as they come; ``timeout`` bounds the wait for the first.

        An iterator that opens at its first ``next()``, which raises the
        errors up to the first output (invalid input, 503, 504). Closing it,
        or leaving it unfinished, drops the item at the model's next step.
        """
        return Outputs(partial(self._open_stream, item, timeout, context.current()), partial(ended, self.name))

    def _open_stream(self, item: Any, timeout: float | None, origin: Origin | None) -> tuple[Stream, float, HTTPError]:
        payload, wait = self._prepare(item, timeout, streaming=True)
        with self._counted(ok=False):
            pool, loading = self._pool_and_loading()
            end = monotonic() + wait
            left = self._left(end, wait) if loading.wait(wait) else wait
            return pool.stream(payload, left, origin), left, self._timed_out(wait)

    async def astream(self, item: Any, timeout: float | None = None) -> AsyncIterator[Any]:
        """Like :meth:`stream`, awaiting instead of blocking."""
        origin = context.current()  # the body runs in the task that iterates: the caller's
        payload, wait = self._prepare(item, timeout, streaming=True)
        outcome = CANCELLED
        stream: Stream | None = None
        try:
            pool, loading = self._pool_and_loading()
            end = monotonic() + wait
            left = self._left(end, wait) if await loading.await_loaded(wait) else wait
            stream = pool.stream(payload, left, origin)
            try:
                async with asyncio.timeout(left):
                    output = await stream.anext()
            except TimeoutError:
                raise self._timed_out(wait) from None
            while output is not END:
                yield output
                output = await stream.anext()
            outcome = OK
        except BaseException as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            if stream is not None:
                stream.close()
            ended(self.name, outcome)

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _prepare(self, item: Any, timeout: float | None, streaming: bool) -> tuple[BaseModel, float]:
        """The validated item and its deadline in seconds; or the error (not yet an item: never counted)."""
        if streaming != self.model_cls.streams():
            calls = "stream() or astream()" if self.model_cls.streams() else "predict() or apredict()"
            kind = "streams" if self.model_cls.streams() else "answers once"
            raise TypeError(f"model {self.name} {kind}: call {calls}")
        wait = self.model_cls.timeout_s if timeout is None else timeout
        if isinstance(wait, bool) or not isinstance(wait, int | float) or wait <= 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        return self._validate(item), wait

    def _pool_and_loading(self) -> tuple[Pool, Loading]:
        """The pool, and where to wait while it loads; the 503 of a handle that is not started."""
        pool, loading = self._pool, self._loading
        if pool is None or loading is None:
            raise not_ready(self.name)
        return pool, loading

    @contextmanager
    def _counted(self, ok: bool) -> Iterator[None]:
        """Count the item by how it ended here: raised, or (with ``ok``) answered."""
        try:
            yield
        except BaseException as exc:
            ended(self.name, outcome_of(exc))
            raise
        if ok:
            ended(self.name, OK)

    def _validate(self, item: Any) -> BaseModel:
        schema = self.model_cls.Input
        if isinstance(item, schema):
            return item
        data = item.model_dump() if isinstance(item, BaseModel) else item
        try:
            return schema.model_validate(data, strict=self.strict or None)
        except ValidationError as exc:
            detail = validation_details(exc, _input_field)
            raise HTTPError(422, f"invalid input for model {self.name}", detail=detail) from None

    def _left(self, end: float, wait: float) -> float:
        """What remains of an item's deadline after it waited for the pool to load; none left is a 503.

        An item that did not wait keeps its whole deadline, which the pool's 504 names.
        """
        left = end - monotonic()
        if left <= 0:
            raise not_ready(self.name, f"still loading after {wait:g} s")
        return left

    def _timed_out(self, wait: float) -> HTTPError:
        return HTTPError(504, f"model {self.name} did not answer within {wait:g} s")


def _input_field(loc: tuple[Any, ...]) -> tuple[str, str]:
    """A model's input is a request body wherever it came from."""
    return "body", ".".join(str(part) for part in loc) or "input"
