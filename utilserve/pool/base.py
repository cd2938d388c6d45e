"""The interface every pool kind (thread, process, ray) offers to a ``ModelHandle``, and what they share."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from ..errors import HTTPError, unavailable
from ..telemetry.context import Origin
from .stream import Stream


@dataclass(frozen=True)
class PoolOptions:
    """Where a model's pool lives, beyond the model itself; each kind reads what concerns it."""

    group: str = ""
    """The models of one group (a service) share one process-pool supervisor; empty: the model's own."""
    socket: str | None = None
    """The socket of a sidecar process pool (``utilserve pool``) to join instead of starting one."""


class Pool(Protocol):
    """Workers that each hold a ``Model`` instance and serve batched requests.

    Built as ``kind(model_cls, name, workers, options)``. ``submit`` returns
    a future that always resolves: to the item's ``Output`` or to an
    ``HTTPError``. Cancelling the future drops an item that no worker has
    taken yet. ``origin`` (the request an item serves) goes with the item
    to the batch that runs it, for its log line and metrics.
    """

    def start(self) -> None:
        """Begin loading workers without waiting for them."""

    def stop(self, timeout: float = 30.0) -> None:
        """Answer queued items 503, let running batches finish, tear workers down."""

    @property
    def ready(self) -> bool:
        """True once every worker finished ``setup()``, until ``stop()``."""

    @property
    def loading(self) -> bool:
        """True while workers start (or restart) and none has failed: an item may wait for them."""

    @property
    def error(self) -> BaseException | None:
        """Why a worker's ``setup()`` failed, if it did."""

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until ready (True) or ``timeout`` (False); raise if setup failed."""

    def submit(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Future[BaseModel]:
        """Queue a validated ``Input``; raise ``HTTPError(503)`` when not ready or full."""

    def stream(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Stream:
        """Queue a validated ``Input`` of a streaming model; its outputs arrive on the stream.

        Raise ``HTTPError(503)`` when not ready or full; a 504 for an item
        that expired while queued ends the stream. ``Stream.close`` drops
        the item, queued or running.
        """

    def call(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> BaseModel:
        """Submit and wait in this thread: the ``Output``; raise its ``HTTPError``, or ``TimeoutError``.

        A pool whose answers reach a blocking caller faster without a
        future overrides this.
        """
        return result_within(self.submit(item, timeout_s, origin), timeout_s)


def result_within(future: Future[BaseModel], timeout_s: float) -> BaseModel:
    """A submitted item's outcome; past ``timeout_s``, cancel it (a queued item leaves the queue) and raise."""
    try:
        return future.result(timeout_s)
    except TimeoutError:
        future.cancel()
        raise


def load_failure(name: str, error: BaseException, what: str = "setup failed") -> RuntimeError:
    """What ``wait_ready`` raises once loading failed: the model, what failed and why, chained to the cause."""
    failure = RuntimeError(f"model {name}: {what}: {type(error).__name__}: {error}")
    failure.__cause__ = error
    return failure


def not_ready(name: str, reason: str = "") -> HTTPError:
    """The 503 of a model that cannot take items now, and why (loading, restarting, setup failed...)."""
    return unavailable(f"model {name} is not ready" + (f" ({reason})" if reason else ""))


def shutting_down(name: str) -> HTTPError:
    """The 503 of an item that a stopping pool will not run."""
    return unavailable(f"model {name} is shutting down")
