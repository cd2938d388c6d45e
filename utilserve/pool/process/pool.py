"""``ProcessPool``: the ``Pool`` of a model hosted by a supervisor process, seen from one web process."""

from __future__ import annotations

import os
from concurrent.futures import Future

from pydantic import BaseModel

from ...telemetry.context import Origin
from ..base import Pool, PoolOptions, load_failure, not_ready
from ..model import Model
from ..stream import Stream
from .client.supervisor import SupervisorConnection, connection_to, forget_connection
from .messages import UNLOAD, ModelStatus
from .rendezvous import resolve
from .spec import ModelSpec


class ProcessPool(Pool):
    """Single use, like the thread pool: after :meth:`stop` build a new one.

    ``options.group`` names the supervisor (the models of one service share
    one); ``options.socket`` joins a sidecar instead. In a single process
    (``service.run()``, a script) the process is the owner: :meth:`stop`
    unloads the model and, once no pool of the process uses it, ends the
    supervisor, as the thread pool would end its threads.
    """

    def __init__(
        self, model_cls: type[Model], name: str, workers: int = 1, options: PoolOptions = PoolOptions()
    ) -> None:
        self.model_cls = model_cls
        self.name = name
        self.spec = ModelSpec.of(model_cls, name, workers)
        self.address = resolve(options.group or name, options.socket)
        self._started = False
        self._stopped = False

    def start(self) -> None:
        if self._started:
            raise RuntimeError(f"the pool of model {self.name} was already started")
        self._started = True
        self._supervisor()

    @property
    def ready(self) -> bool:
        return self._status().phase == "ready"

    @property
    def loading(self) -> bool:
        return self._started and not self._stopped and self._supervisor().loading(self.name)

    @property
    def error(self) -> BaseException | None:
        return self._status().setup_error

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The model's worker processes, as the supervisor last reported them."""
        return tuple(pid for pid, _ in self._status().workers)

    @property
    def supervisor_pid(self) -> int:
        return self._status().supervisor

    def wait_ready(self, timeout: float | None = None) -> bool:
        if not self._started or self._stopped:
            return False
        status = self._supervisor().wait_state(self.name, lambda s: s.phase in ("ready", "failed"), timeout)
        if status.phase == "failed":
            raise load_failure(self.name, status.setup_error or RuntimeError("the pool supervisor gave no reason"))
        return self.ready

    def submit(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Future[BaseModel]:
        supervisor = self._live_supervisor()
        workers = supervisor.ready_workers(self.name, timeout_s)
        return supervisor.workers.submit(self.name, workers, item, timeout_s, origin)

    def stream(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Stream:
        """Over the shared connection to a worker, multiplexed with the process's other items and streams."""
        supervisor = self._live_supervisor()
        workers = supervisor.ready_workers(self.name, timeout_s)
        return supervisor.workers.stream(self.name, workers, item, timeout_s, origin)

    def call(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> BaseModel:
        """Over this thread's own connection to a worker: no reader thread between the answer and the caller."""
        supervisor = self._live_supervisor()
        workers = supervisor.ready_workers(self.name, timeout_s)
        output: BaseModel = supervisor.workers.call(self.name, workers, item, timeout_s, origin)
        return output

    def stop(self, timeout: float = 30.0) -> None:
        """The owner unloads the model (and ends the supervisor with its last pool); others just hang up."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        supervisor = self._supervisor()
        owner = self.address.spawns and self.address.owner == os.getpid()
        if owner:
            supervisor.request((UNLOAD, self.name), timeout)
        if supervisor.detach(self.name):
            forget_connection(self.address)
            supervisor.close(exit_supervisor=owner, timeout=timeout)

    def _live_supervisor(self) -> SupervisorConnection:
        if not self._started or self._stopped:
            raise not_ready(self.name, "shutting down" if self._stopped else "")
        return self._supervisor()

    def _status(self) -> ModelStatus:
        if not self._started or self._stopped:
            return ModelStatus()
        return self._supervisor().state(self.name)

    def _supervisor(self) -> SupervisorConnection:
        supervisor = connection_to(self.address)
        if self._started and not self._stopped and not supervisor.attached(self.name):
            supervisor.attach(self.spec)
        return supervisor
