"""``pool="process"``: one pool shared by every web worker process of a server.

A supervisor process starts and restarts the model workers (spawned, never
forked); each web process keeps one Unix-socket connection to it for the
models' status, and sends its items straight to a worker, where the batcher
lives (see :mod:`.client`, :mod:`.worker`, :mod:`.supervisor`,
:mod:`.rendezvous`).
Under gunicorn or uWSGI the first worker to need the pool starts the
supervisor and the others join it; it ends with the server master. With
``UTILSERVE_POOL_SOCKET`` the web processes join a sidecar started with
``utilserve pool TARGET --socket PATH`` instead. In a single process
(``service.run()``, a script) the process is the owner: ``stop()`` unloads
the model and, once no pool of the process uses it, ends the supervisor, as
the thread pool would end its threads.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..api.errors import HTTPError
from .base import load_failure
from .batcher import RETRY_AFTER
from .client import Link, ModelState, drop_link, link_for
from .model import Model
from .rendezvous import resolve
from .spec import ModelSpec


@dataclass(frozen=True)
class _Settings:
    group: str
    socket: str | None


_settings: dict[tuple[type[Model], str], _Settings] = {}


def register(model_cls: type[Model], name: str, *, group: str, socket: str | None) -> None:
    """Record the service a model belongs to: its models share one supervisor (``group``) or a sidecar socket.

    Checks now that the model class is importable by name, so a model that
    cannot be served this way fails where it is declared.
    """
    ModelSpec.of(model_cls, name, 1)
    _settings[(model_cls, name)] = _Settings(group, socket)


class ProcessPool:
    """The ``Pool`` of a model hosted by a supervisor process; single use, like the thread pool."""

    def __init__(self, model_cls: type[Model], name: str, workers: int = 1) -> None:
        self.model_cls = model_cls
        self.name = name
        self.spec = ModelSpec.of(model_cls, name, workers)
        settings = _settings.get((model_cls, name), _Settings(group=name, socket=None))
        self.address = resolve(settings.group, settings.socket)
        self._started = False
        self._stopped = False

    def start(self) -> None:
        if self._started:
            raise RuntimeError(f"the pool of model {self.name} was already started")
        self._started = True
        self._link()

    @property
    def ready(self) -> bool:
        return self._state().phase == "ready"

    @property
    def error(self) -> BaseException | None:
        return self._state().error

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The model's worker processes, as the supervisor last reported them."""
        return tuple(pid for pid, _ in self._state().workers)

    @property
    def supervisor_pid(self) -> int:
        return self._state().supervisor

    def wait_ready(self, timeout: float | None = None) -> bool:
        if not self._started or self._stopped:
            return False
        state = self._link().wait_state(self.name, lambda s: s.phase in ("ready", "failed"), timeout)
        if state.phase == "failed":
            raise load_failure(self.name, state.error or RuntimeError("the pool supervisor gave no reason"))
        return self.ready

    def submit(self, item: BaseModel, timeout_s: float) -> Future[BaseModel]:
        return self._live_link().submit(self.name, item, timeout_s)

    def call(self, item: BaseModel, timeout_s: float) -> BaseModel:
        """Over this thread's own connection to a worker: no reader thread between the answer and the caller."""
        return self._live_link().call(self.name, item, timeout_s)  # type: ignore[no-any-return]

    def _live_link(self) -> Link:
        if not self._started or self._stopped:
            why = " (shutting down)" if self._stopped else ""
            raise HTTPError(503, f"model {self.name} is not ready{why}", headers=dict(RETRY_AFTER))
        return self._link()

    def stop(self, timeout: float = 30.0) -> None:
        """The owner unloads the model (and ends the supervisor with its last pool); others just hang up."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        link = self._link()
        owner = self.address.spawns and self.address.owner == os.getpid()
        if owner:
            link.request(("unload", self.name), timeout)
        if link.detach(self.name):
            drop_link(self.address)
            link.close(exit_supervisor=owner, timeout=timeout)

    def _state(self) -> ModelState:
        if not self._started or self._stopped:
            return ModelState()
        return self._link().state(self.name)

    def _link(self) -> Link:
        link = link_for(self.address)
        if self._started and not self._stopped and not link.attached(self.name):
            link.attach(self.spec)
        return link


def sidecar_specs(service: Any) -> list[ModelSpec]:
    """What ``utilserve pool`` hosts: every model ``service`` serves with the process pool."""
    return [
        ModelSpec.of(handle.model_cls, handle.name, handle.workers)
        for handle in service.models
        if handle.pool_kind == "process"
    ]
