"""Service: the backend-agnostic description of an app, and the way to serve it."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from .api.base import API, build_router
from .api.builtin import builtin_api, model_endpoint
from .api.openapi import openapi_document
from .api.routing import Endpoint, Router, join
from .backends import Adapter, load_adapter, resolve_backend
from .collector import settle
from .concurrency import run_sync
from .cors import CORS, cors_layer
from .handler import Handler, Settings
from .lifecycle import STOP_WAIT_S, exit_at_signal_while_loading, stop_at_exit
from .middleware import AsyncMiddleware, Middleware, SyncMiddleware
from .pool import Model, ModelHandle, PoolOptions
from .telemetry.logs import SWITCH as ACCESS_LOG_SWITCH
from .telemetry.logs import configure as configure_access_log
from .telemetry.logs import flush as flush_access_log
from .telemetry.metrics import prepare as prepare_metrics
from .telemetry.observe import observing
from .telemetry.tally import tally

HookFunction = TypeVar("HookFunction", bound=Callable[..., Any])
T = TypeVar("T")
MiddlewareFunction = TypeVar("MiddlewareFunction", SyncMiddleware, AsyncMiddleware)

_current: Service | None = None


class Service:
    """An API tree, its config, hooks and models, ready to run on any backend.

    ``backend`` is a name (``"flask"``), a framework module, or an existing
    native app to mount into; ``UTILSERVE_BACKEND`` overrides it.
    ``asynchronous`` picks ASGI over WSGI where a framework has both (Django,
    Falcon); ``UTILSERVE_ASYNCHRONOUS`` overrides it. ``pool_socket`` is
    the socket of a sidecar pool (``utilserve pool``) for ``pool="process"``
    models; ``UTILSERVE_POOL_SOCKET`` overrides it. ``strict=True`` validates
    JSON bodies and model inputs in pydantic's strict mode, and reads query,
    path, header and cookie strings only as the JSON literals they spell
    (``?flag=yes`` is a 422); lax is the default, as in FastAPI. ``cors``
    (a :class:`CORS`) lets pages of other origins call the service from a
    browser, preflights included. ``docs=False`` takes down the docs page at
    ``{route}/docs``; ``UTILSERVE_DOCS`` overrides it.
    """

    def __init__(
        self,
        module_name: str | None = None,
        *,
        name: str,
        description: str = "",
        version: str = "0.1.0",
        backend: Any = "starlette",
        production: bool = False,
        host: str = "127.0.0.1",
        port: int = 8000,
        asynchronous: bool | None = None,
        api: type[API] | str | None = None,
        route: str = "/",
        max_body_size: int = 10 * 1024 * 1024,
        sync_threads: int = 40,
        pool: str = "thread",
        pool_socket: str | None = None,
        strict: bool = False,
        metrics: bool = True,
        access_log: bool = True,
        cors: CORS | None = None,
        docs: bool = True,
    ) -> None:
        global _current
        if not isinstance(name, str) or not name:
            raise TypeError(f"Service name must be a non-empty str, got {name!r}")
        if not isinstance(max_body_size, int) or max_body_size <= 0:
            raise ValueError(f"max_body_size must be a positive int (bytes), got {max_body_size!r}")
        if cors is not None and not isinstance(cors, CORS):
            raise TypeError(f"Service cors must be a utilserve.CORS or None, got {type(cors).__name__} {cors!r}")
        self.module_name = module_name
        self.name = name
        self.description = description
        self.version = version
        self.backend = backend
        self.production = production
        self.host = host
        self.port = port
        self.asynchronous = _env_flag("UTILSERVE_ASYNCHRONOUS", asynchronous)
        self.api = api
        self.route = "/" + route.strip("/")
        self.max_body_size = max_body_size
        self.sync_threads = sync_threads
        self.pool = pool
        self.pool_socket = pool_socket
        self.strict = strict
        self.metrics = _env_flag("UTILSERVE_METRICS", metrics)
        self.access_log = _env_flag(ACCESS_LOG_SWITCH, access_log)
        prepare_metrics(name, enabled=bool(self.metrics))  # before the metrics a module declares after its Service
        configure_access_log(bool(self.access_log))
        self.cors = cors
        self.docs = _env_flag("UTILSERVE_DOCS", docs)
        self.models: list[ModelHandle] = []
        self.endpoints: list[Endpoint] = []
        self._model_routes: list[tuple[ModelHandle, str]] = []
        self.configs: dict[type, Any] = {}
        self._startup_hooks: list[Callable[[], Any]] = []
        self._shutdown_hooks: list[Callable[[], Any]] = []
        self._middleware: list[Middleware] = []
        self._handler: Handler | None = None
        self._app: Any = None
        self._lifecycle_lock = threading.Lock()
        self._running = False
        self._stopped = threading.Event()
        self._stopped.set()
        self._forget_exit_stop: Callable[[], None] | None = None
        _current = self

    def __repr__(self) -> str:
        return f"<Service {self.name!r} backend={self.backend_name!r} route={self.route!r}>"

    def use(self, config: T) -> T:
        """Register a config object (an ``Env``, a settings object); read it back from ``configs``."""
        self.configs[type(config)] = config
        return config

    def on_startup(self, hook: HookFunction) -> HookFunction:
        """Run ``hook`` (sync or async) once per serving process, before it serves."""
        self._startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: HookFunction) -> HookFunction:
        """Run ``hook`` (sync or async) when the serving process stops."""
        self._shutdown_hooks.append(hook)
        return hook

    def middleware(self, function: MiddlewareFunction) -> MiddlewareFunction:
        """Wrap every request: ``function(request, call_next)`` returns a response, sync or async.

        Layers run in declaration order, the first outermost, after the
        built-in one that sets the request id and records metrics and the
        access log, and after CORS, which answers preflights itself.
        ``request.route`` is the route template of the path (None when no
        route has it); returning a ``Response`` without ``call_next`` answers at
        once.
        """
        if self._handler is not None:
            raise RuntimeError(f"declare middleware before the app is built: {function!r} came after setup()")
        self._middleware.append(Middleware.of(function))
        return function

    def model(
        self,
        model_cls: type[Model],
        *,
        name: str | None = None,
        route: str | None = None,
        workers: int = 1,
        pool: str | None = None,
    ) -> ModelHandle:
        """Serve ``model_cls`` from a worker pool; call the handle's ``predict`` / ``apredict``.

        With ``route``, ``POST {service route}{route}`` takes ``Input`` as its
        JSON body and answers ``Output``.  The pool kind is ``pool``, else
        ``UTILSERVE_POOL``, else the Service's ``pool``.  Models load at
        startup; ``/readyz`` is 503 until they have.
        """
        if self._handler is not None:
            raise RuntimeError(f"declare models before the app is built: {model_cls!r} came after setup()")
        kind = pool or os.environ.get("UTILSERVE_POOL") or self.pool
        options = PoolOptions(group=self.name, socket=self.pool_socket)
        handle = ModelHandle(model_cls, name, workers, kind, options, strict=self.strict)
        self.models.append(handle)
        if route is not None:
            self._model_routes.append((handle, route))
        return handle

    @property
    def backend_name(self) -> str:
        return resolve_backend(os.environ.get("UTILSERVE_BACKEND") or self.backend)

    @property
    def ready(self) -> bool:
        """Started, and every model loaded."""
        return self._running and all(handle.ready for handle in self.models)

    def setup(self) -> Handler:
        """Compile the API tree (once); errors in the tree surface here, not per request."""
        if self._handler is None:
            router = Router()
            if self.api is not None:
                build_router(self._resolve_api(), self.route, router, self.strict)
            for handle, route in self._model_routes:
                router.add(model_endpoint(handle, join(self.route, route)))
            self.endpoints = list(router)
            builtin = builtin_api(
                self.route,
                lambda: self.ready,
                self.models,
                self.openapi,
                bool(self.metrics),
                self.name if self.docs else None,
            )
            build_router(builtin, "/", router)
            settings = Settings(
                name=self.name,
                route=self.route,
                max_body_size=self.max_body_size,
                production=self.production,
                asynchronous=bool(self.asynchronous),
                sync_threads=self.sync_threads,
                metrics=bool(self.metrics),
            )
            cors = [cors_layer(self.cors)] if self.cors is not None else []
            layers = [observing(with_metrics=bool(self.metrics)), *cors, *self._middleware]
            self._handler = Handler(router, settings, self.astartup, self.ashutdown, layers)
        return self._handler

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the service's own endpoints (the built-in ones left out)."""
        self.setup()
        return openapi_document(self.endpoints, self.name, self.version, self.description)

    def application(self) -> Any:
        """The native WSGI/ASGI app of the chosen backend (built once)."""
        if self._app is None:
            exit_at_signal_while_loading()
            native = None if isinstance(self.backend, (str, ModuleType)) else self.backend
            if native is not None and resolve_backend(native) != self.backend_name:
                native = None
            self._app = self.adapter.application(self.setup(), native)
        return self._app

    def run(self, host: str | None = None, port: int | None = None) -> None:
        """Serve with the backend's development server (blocking)."""
        app = self.application()
        self.adapter.run(app, self.setup(), host or self.host, port or self.port)

    @property
    def adapter(self) -> Adapter:
        return load_adapter(self.backend_name)

    def startup(self) -> None:
        """Run the startup hooks now, from sync code (a WSGI worker)."""
        run_sync(self.astartup())

    async def astartup(self) -> None:
        """Run the startup hooks now, from an event loop; later calls do nothing until shutdown."""
        with self._lifecycle_lock:
            if self._running:
                return
            self._running = True
            self._stopped.clear()
        forget_exit_stop = self._forget_exit_stop = stop_at_exit(self.shutdown)
        try:
            for hook in self._startup_hooks:
                await _call(hook)
            for handle in self.models:
                handle.start()
        except BaseException:  # nothing stays started, so that the next request may try again
            for handle in self.models:
                handle.stop()
            forget_exit_stop()
            with self._lifecycle_lock:
                self._running = False
                self._stopped.set()
            raise
        settle()  # started: a signal that interrupts this leaves the shutdown hooks to the exit

    def shutdown(self) -> None:
        """Run the shutdown hooks now, from sync code (also as the process exits)."""
        run_sync(self.ashutdown())

    async def ashutdown(self) -> None:
        """Run the shutdown hooks now; while another thread does (a signal's stop, a lifespan), wait for it."""
        with self._lifecycle_lock:
            stopping_elsewhere = not self._running
            self._running = False
        if stopping_elsewhere:
            await _until_set(self._stopped, STOP_WAIT_S)
            return
        if self._forget_exit_stop is not None:
            self._forget_exit_stop()
        try:
            for handle in self.models:
                handle.stop()  # blocks while running batches finish; no executor exists at interpreter exit
            for hook in reversed(self._shutdown_hooks):
                await _call(hook)
        finally:
            flush_access_log()  # some servers end their workers by os._exit, which skips logging's own flush
            tally.write()
            self._stopped.set()

    def _resolve_api(self) -> type[API]:
        if isinstance(self.api, str):
            module_name, _, attribute = self.api.partition(":")
            if not attribute:
                raise ValueError(f"api import string must be 'module:Attribute', got {self.api!r}")
            resolved = getattr(importlib.import_module(module_name), attribute)
        else:
            resolved = self.api
        if not (isinstance(resolved, type) and issubclass(resolved, API)):
            raise TypeError(f"Service api must be an API subclass or 'module:Class', got {resolved!r}")
        return resolved


def _env_flag(name: str, default: bool | None) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(f"{name} must be one of 1/true/yes/0/false/no, got {value!r}")
    return value in ("1", "true", "yes")


async def _until_set(event: threading.Event, timeout_s: float) -> None:
    """Wait for another thread without blocking the loop, and without an executor: none is left at exit."""
    deadline = time.monotonic() + timeout_s
    while not event.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def _call(hook: Callable[[], Any]) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


def current() -> Service:
    """The Service most recently created in this process."""
    if _current is None:
        raise LookupError("no Service has been created yet in this process")
    return _current
