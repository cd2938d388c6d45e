"""The in-process pool: one thread and one model instance per worker.

For ``service.run()`` and single-process servers. A model that holds the GIL
while predicting gains nothing from more than one worker here; one that
releases it (numpy, torch, I/O) runs batches in parallel.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from time import monotonic
from typing import Any

from pydantic import BaseModel

from ..collector import settle
from ..concurrency import start_for_user_code
from ..errors import HTTPError
from ..telemetry.batches import batch as running
from ..telemetry.context import Origin
from .base import Pool, PoolOptions, load_failure, not_ready, shutting_down
from .batcher import Batcher
from .model import Model
from .observed import serving
from .outcome import run_batch
from .stepping import Stepper, Streaming
from .stream import Stream, follow_queue

logger = logging.getLogger("utilserve.pool")


class ThreadPool(Pool):
    """Workers are threads started by :meth:`start`; each runs ``setup()`` itself.

    Single use: after :meth:`stop` build a new pool.
    """

    def __init__(
        self, model_cls: type[Model], name: str, workers: int = 1, options: PoolOptions = PoolOptions()
    ) -> None:
        self.model_cls = model_cls
        self.name = name
        self._batcher = Batcher(name, model_cls.max_batch_size, model_cls.max_wait_ms, model_cls.max_queue)
        self._threads = [
            threading.Thread(target=self._work, name=f"utilserve-{name}-{index}", daemon=True)
            for index in range(workers)
        ]
        self._lock = threading.Lock()
        self._loaded = 0
        self._settled = threading.Event()
        self._error: BaseException | None = None
        self._started = False
        self._stopped = False
        self._room_freed = threading.Event()

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError(f"the pool of model {self.name} was already started")
            self._started = True
        serving(self.name, False)
        for thread in self._threads:
            start_for_user_code(thread)

    @property
    def ready(self) -> bool:
        return self._loaded == len(self._threads) and not self._stopped

    @property
    def loading(self) -> bool:
        return self._started and not self._settled.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def wait_ready(self, timeout: float | None = None) -> bool:
        self._settled.wait(timeout)
        if self._error is not None:
            raise load_failure(self.name, self._error)
        return self.ready

    def submit(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Future[BaseModel]:
        return self._queue(item, timeout_s, origin)

    def stream(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Stream:
        stream = Stream(on_room=self._room_freed.set)
        follow_queue(stream, self._queue(Streaming(item, stream), timeout_s, origin))
        return stream

    def _queue(self, payload: Any, timeout_s: float, origin: Origin | None) -> Future[Any]:
        """Queue a one-shot item or a stream's; the 503 of a pool that is not ready or full."""
        if not self.ready:
            raise not_ready(self.name, f"setup failed: {type(self._error).__name__}" if self._error is not None else "")
        return self._batcher.submit(payload, monotonic() + timeout_s, origin)

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        serving(self.name, False)
        self._batcher.close(shutting_down(self.name))
        self._settled.set()
        if not self._started:
            return
        end = monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - monotonic()))
        lagging = [thread.name for thread in self._threads if thread.is_alive()]
        if lagging:
            logger.warning("model %s: workers still busy after %.1f s: %s", self.name, timeout, lagging)

    def _work(self) -> None:
        try:
            model = self.model_cls()
            model.setup()
        except Exception as exc:
            logger.error("model %s: setup failed", self.name, exc_info=exc)
            with self._lock:
                self._error = self._error or exc
            self._settled.set()
            return
        with self._lock:
            last = self._loaded + 1 == len(self._threads)
            if last:
                settle()  # once, with every worker's model loaded, before ``ready`` counts the last one
            self._loaded += 1
            if last:
                serving(self.name, self.ready)
                self._settled.set()
        try:
            self._step(model) if self.model_cls.streams() else self._serve(model)
        finally:
            try:
                model.teardown()
            except Exception:
                logger.exception("model %s: teardown failed", self.name)

    def _serve(self, model: Model) -> None:
        while (batch := self._batcher.next_batch()) is not None:
            try:
                with running(self.name, [item.origin for item in batch]):
                    outcomes = run_batch(model, self.name, [item.payload for item in batch])
            except BaseException:
                self._batcher.finish(batch, [HTTPError(500, f"model {self.name}: worker died") for _ in batch])
                raise
            self._batcher.finish(batch, outcomes)

    def _step(self, model: Model) -> None:
        """Continuous batching, until the pool stops and every stream ended."""
        stepper = Stepper(model, self.name, self.model_cls.max_batch_size, self.model_cls.timeout_s)
        stepper.run(self._batcher, self._room_freed)
