"""``ModelHandle``: what endpoints call to reach a model, whatever pool serves it."""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from ..errors import HTTPError, validation_details
from .base import Pool, PoolOptions, not_ready
from .model import Model

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
    ones). Both return the model's ``Output`` or raise ``HTTPError``: 422 for
    invalid input, 503 when the pool is not ready or its queue is full, 504
    when the deadline passes, the model's mapped status (500 by default) when
    it fails. Usable as a context manager that starts, waits for readiness
    and stops.
    """

    def __init__(
        self,
        model_cls: type[Model],
        name: str | None = None,
        workers: int = 1,
        pool: str = "thread",
        options: PoolOptions = PoolOptions(),
    ) -> None:
        if not (isinstance(model_cls, type) and issubclass(model_cls, Model)):
            raise TypeError(f"ModelHandle needs a Model subclass, got {model_cls!r}")
        if model_cls.predict is Model.predict:
            raise TypeError(f"{model_cls.__name__} does not implement predict(self, batch)")
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if pool not in POOLS:
            raise ValueError(f"unknown pool kind {pool!r}; supported: {', '.join(sorted(POOLS))}")
        self.model_cls = model_cls
        self.name = name or model_cls.__name__
        self.workers = workers
        self.pool_kind = pool
        self.options = options
        if pool == "process":
            from .process.spec import importable_target

            importable_target(model_cls, self.name)  # fail where the model is declared, not when it starts
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start loading the workers (returns at once); a no-op while started."""
        with self._lock:
            if self._pool is None:
                self._pool = pool_class(self.pool_kind)(self.model_cls, self.name, self.workers, self.options)
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
        pool, payload, wait = self._prepare(item, timeout)
        try:
            return pool.call(payload, wait)
        except TimeoutError:
            raise self._timed_out(wait) from None

    async def apredict(self, item: Any, timeout: float | None = None) -> Any:
        """Like :meth:`predict`, awaiting instead of blocking; cancelling drops a queued item."""
        future, wait = self._submit(item, timeout)
        try:
            async with asyncio.timeout(wait):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            raise self._timed_out(wait) from None

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

    def _submit(self, item: Any, timeout: float | None) -> tuple[Future[BaseModel], float]:
        pool, payload, wait = self._prepare(item, timeout)
        return pool.submit(payload, wait), wait

    def _prepare(self, item: Any, timeout: float | None) -> tuple[Pool, BaseModel, float]:
        """The pool, the validated item and its deadline in seconds, or the error the caller gets."""
        wait = self.model_cls.timeout_s if timeout is None else timeout
        if isinstance(wait, bool) or not isinstance(wait, int | float) or wait <= 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        payload = self._validate(item)
        pool = self._pool
        if pool is None:
            raise not_ready(self.name)
        return pool, payload, wait

    def _validate(self, item: Any) -> BaseModel:
        schema = self.model_cls.Input
        if isinstance(item, schema):
            return item
        data = item.model_dump() if isinstance(item, BaseModel) else item
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            detail = validation_details(exc, _input_field)
            raise HTTPError(422, f"invalid input for model {self.name}", detail=detail) from None

    def _timed_out(self, wait: float) -> HTTPError:
        return HTTPError(504, f"model {self.name} did not answer within {wait:g} s")


def _input_field(loc: tuple[Any, ...]) -> tuple[str, str]:
    """A model's input is a request body wherever it came from."""
    return "body", ".".join(str(part) for part in loc) or "input"
