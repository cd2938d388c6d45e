"""``pool="ray"``: the Model served by Ray Serve replicas, reached through Ray's own handles.

Every serving process connects to the cluster (``UTILSERVE_RAY_ADDRESS``)
and calls the model's deployment through a ``DeploymentHandle``. The first
process of a host to start deploys the application, under a lock file so
that a server's workers starting together deploy it once; the others, and
later processes, find it running and only take a handle. A deployment
outlives the web workers: stopping a pool disconnects this process, while
``serve delete`` or stopping the cluster removes the replicas.

Ray's failures become the error contract here, never a Ray traceback:
backpressure (``max_queued_requests``) and lost replicas are 503 with
``Retry-After``, the request's deadline is 504, anything else 500.

A streaming model's item is one ``stream=True`` call of the replica's
``stream`` method; this process's Ray loop feeds its outputs to the
reader's ``Stream`` (see ``feed``), and closing the stream cancels the call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import wait as wait_for
from contextlib import suppress
from functools import partial
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from ray import exceptions as ray_errors
from ray import serve
from ray.serve import exceptions as serve_errors
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from ray.serve.schema import ApplicationStatus, DeploymentStatus

from ...errors import HTTPError, unavailable
from ...telemetry.context import Origin
from ..base import Pool, PoolOptions, load_failure, not_ready, shutting_down
from ..model import Model
from ..observed import serving
from ..stream import Stream
from .cluster import Cluster, acquire, host_lock, release
from .feed import Feed
from .replica import application, deployment_options

logger = logging.getLogger("utilserve.pool")

REPLICA_LOST = (
    ray_errors.RayActorError,
    ray_errors.WorkerCrashedError,
    ray_errors.NodeDiedError,
    ray_errors.OutOfMemoryError,
    ray_errors.TaskCancelledError,
    serve_errors.ReplicaUnavailableError,
    serve_errors.DeploymentUnavailableError,
)
"""Failures of a replica rather than of the request: worth retrying, so 503."""
SERVING = (DeploymentStatus.HEALTHY, DeploymentStatus.UPSCALING, DeploymentStatus.DOWNSCALING)
OBSERVE_S = 0.5
"""How often a serving pool reads the deployment's state: a lost node turns its waiting requests away this late."""
OBSERVE_STARTING_S = 0.2
T = TypeVar("T")
Call = Callable[[DeploymentHandle[Any]], Coroutine[Any, Any, T]]
"""A request to the deployment, run on the process's Ray loop with the pool's handle."""


class RayPool(Pool):
    """One model's deployment on Ray Serve, seen from one serving process.

    ``workers`` is the number of replicas unless the model's
    ``ray_options`` say otherwise. Ready once every replica has run
    ``setup()`` (the deployment is HEALTHY); it stays ready while at least
    one replica runs, so losing one replica does not turn all traffic away
    while Ray replaces it. Single use: after :meth:`stop` build a new pool.
    """

    def __init__(
        self, model_cls: type[Model], name: str, workers: int = 1, options: PoolOptions = PoolOptions()
    ) -> None:
        self.model_cls = model_cls
        self.name = name
        self.app_name = f"{model_cls.__module__}.{name}"
        self.deployment_options = deployment_options(model_cls, workers)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"utilserve-ray-{name}", daemon=True)
        self._stopping = threading.Event()
        self._settled = threading.Event()
        self._cluster: Cluster | None = None
        self._handle: DeploymentHandle[Any] | None = None
        self._error: BaseException | None = None
        self._serving = False
        self._started = False
        self._stopped = False
        self._pid = os.getpid()
        self._pending: set[Future[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError(f"the pool of model {self.name} was already started")
            self._started = True
            self._pid = os.getpid()
        serving(self.name, False)
        self._thread.start()

    @property
    def loading(self) -> bool:
        return self._started and not self._settled.is_set() and not self._stopped

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def ready(self) -> bool:
        """False in a process forked after :meth:`start`: the connection and its threads stayed behind."""
        cluster = self._cluster
        live = cluster is not None and not cluster.closed and os.getpid() == self._pid
        return live and self._serving and not self._stopped

    def wait_ready(self, timeout: float | None = None) -> bool:
        self._settled.wait(timeout)
        if self._error is not None:
            raise load_failure(self.name, self._error, "Ray deployment failed")
        return self.ready

    def submit(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Future[BaseModel]:
        future: Future[BaseModel] = Future()
        self._launch(partial(self._call, item=item, timeout_s=timeout_s, origin=origin), future)
        return future

    def stream(self, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Stream:
        """The item's outputs as the replica's steps make them; closing the stream cancels the Ray call."""
        feed = Feed(self.name, self.model_cls.timeout_s)
        future: Future[None] = Future()
        future.add_done_callback(partial(_end_stream, self.name, feed.stream))
        feed.stream.cancel = future.cancel
        self._launch(partial(self._feed, item=item, timeout_s=timeout_s, origin=origin, feed=feed), future)
        return feed.stream

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new items, let this process's requests and streams finish (503 past ``timeout``), disconnect."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            pending = list(self._pending)
        end = time.monotonic() + timeout
        if pending:
            wait_for(pending, timeout)
        self._end(pending, partial(shutting_down, self.name))
        self._stopping.set()
        self._settled.set()
        if self._started:
            self._thread.join(max(0.0, end - time.monotonic()))

    def _run(self) -> None:
        """Connect, deploy unless deployed, then follow the deployment's health until stopped."""
        try:
            cluster = acquire()
        except Exception as exc:  # noqa: BLE001 - no connection is the pool's error, shown by /readyz
            self._fail(exc)
            return
        self._cluster = cluster
        try:
            self._deploy(cluster)
            with cluster.control:
                cluster.check_open()
                self._handle = serve.get_deployment_handle(self.name, self.app_name)
            while not (self._stopping.is_set() or cluster.closed):
                was_serving = self._serving
                self._observe(cluster)
                if was_serving and not self._serving:
                    self._turn_away_pending()
                serving(self.name, self.ready)
                self._stopping.wait(OBSERVE_S if self._serving else OBSERVE_STARTING_S)
        except Exception as exc:  # noqa: BLE001 - a failed deploy is the pool's error, shown by /readyz
            self._fail(exc)
        finally:
            self._serving = False
            serving(self.name, False)
            release(cluster)

    def _deploy(self, cluster: Cluster) -> None:
        """Deploy unless the application exists: ``serve.run`` of an existing one restarts its replicas.

        Serialised per host, so that a server's workers starting together
        deploy once. It returns once Ray has the application; the health
        loop then waits for the replicas' ``setup()``.
        """
        with cluster.control, host_lock(cluster.address or ""):
            cluster.check_open()
            with suppress(ray_errors.ActorAlreadyExistsError):  # another host started Serve first
                serve.start(proxy_location="Disabled")
            found = cluster.applications(max_age=0).get(self.app_name)
            if found is None or found.status == ApplicationStatus.DEPLOY_FAILED:
                logger.info("model %s: deploying Ray Serve application %s", self.name, self.app_name)
                app = application(self.model_cls, self.name, self.deployment_options)
                target = serve.RunTarget(target=app, name=self.app_name, route_prefix=None)
                serve.run_many([target], wait_for_applications_running=False)

    def _observe(self, cluster: Cluster) -> None:
        try:
            app = cluster.applications().get(self.app_name)
        except Exception as exc:  # noqa: BLE001 - an unreadable status means not ready, not a dead pool
            logger.warning("model %s: cannot read Ray Serve status: %s", self.name, exc)
            self._serving = False
            return
        deployment = None if app is None else app.deployments.get(self.name)
        if deployment is None:
            self._serving = False
        elif deployment.status == DeploymentStatus.DEPLOY_FAILED:
            self._fail(RuntimeError(deployment.message or "the deployment failed"))
        elif deployment.status in SERVING:
            self._error = None
            self._serving = True
            self._settled.set()
        else:
            self._serving = self._serving and deployment.running > 0

    def _turn_away_pending(self) -> None:
        """No replica runs any more (its node was lost): the requests waiting for one get their 503 now.

        Ray Serve would hold them until a replica comes back, which may be
        never; the replica each was sent to, if any, is gone with its node.
        """
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return
        logger.warning("model %s: no Ray replica runs; answering %d waiting requests 503", self.name, len(pending))
        self._end(pending, partial(unavailable, f"model {self.name}: no Ray replica runs; retry"))

    def _end(self, pending: list[Future[Any]], error: Callable[[], HTTPError]) -> None:
        """Answer the ``pending`` requests that have no answer yet with a new ``error()`` each; cancel their calls."""
        for future in pending:
            with suppress(InvalidStateError):  # answered meanwhile
                future.set_exception(error())
        cluster = self._cluster
        if cluster is not None:
            with suppress(RuntimeError):  # the loop closed: nothing left to cancel
                cluster.loop.call_soon_threadsafe(self._cancel_tasks)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            logger.error("model %s: Ray deployment failed", self.name, exc_info=exc)
        self._error = exc
        self._serving = False
        self._settled.set()

    def _launch(self, call: Call[T], future: Future[T]) -> None:
        """Run ``call`` on the Ray loop, settling ``future``; raise the 503 of a pool that cannot take it."""
        with self._lock:
            cluster, handle = self._cluster, self._handle
            if not self.ready or cluster is None or handle is None:
                failed = f"Ray deployment failed: {type(self._error).__name__}" if self._error else ""
                raise not_ready(self.name, failed)
            try:
                cluster.loop.call_soon_threadsafe(self._begin, partial(call, handle), future)
            except RuntimeError:  # the loop closed: the process is exiting
                raise shutting_down(self.name) from None
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def _begin(self, call: Callable[[], Coroutine[Any, Any, T]], future: Future[T]) -> None:
        """On the loop thread: start the call; a cancelled future cancels it, its end settles the future."""
        if future.cancelled():
            return
        task = asyncio.ensure_future(call())
        self._tasks.add(task)
        task.add_done_callback(partial(self._settle, future))
        future.add_done_callback(partial(_cancel_on_cancel, task))

    async def _call(
        self, handle: DeploymentHandle[Any], item: BaseModel, timeout_s: float, origin: Origin | None
    ) -> BaseModel:
        try:
            response = handle.remote(item, time.time() + timeout_s, origin)
        except Exception as exc:  # noqa: BLE001 - every Ray failure becomes an HTTP error
            raise self._http_error(exc) from None
        try:
            async with asyncio.timeout(timeout_s):
                outcome = await response
        except asyncio.CancelledError:
            response.cancel()  # type: ignore[no-untyped-call]  # Ray leaves DeploymentResponse.cancel unannotated
            raise
        except TimeoutError:
            response.cancel()  # type: ignore[no-untyped-call]  # Ray leaves DeploymentResponse.cancel unannotated
            raise HTTPError(504, f"model {self.name} did not answer within {timeout_s:g} s") from None
        except Exception as exc:  # noqa: BLE001 - every Ray failure becomes an HTTP error
            raise self._http_error(exc) from None
        if isinstance(outcome, HTTPError):
            raise outcome
        output: BaseModel = outcome
        return output

    async def _feed(
        self, handle: DeploymentHandle[Any], item: BaseModel, timeout_s: float, origin: Origin | None, feed: Feed
    ) -> None:
        """The replica's outputs into ``feed``, in order; the item's error, or Ray's as an HTTP error, raised.

        ``timeout_s`` reaches the replica's queue as the item's deadline;
        the reader bounds its own wait for the first output.
        """
        try:
            # stream=True makes remote() a response generator; Ray types it as either kind of response
            responses = cast(
                DeploymentResponseGenerator[Any],
                handle.options(stream=True).stream.remote(item, time.time() + timeout_s, origin),
            )
        except Exception as exc:  # noqa: BLE001 - every Ray failure becomes an HTTP error
            raise self._http_error(exc) from None
        try:
            async for outcome in responses:
                if isinstance(outcome, HTTPError):
                    raise outcome
                await feed.put(outcome)
        except (asyncio.CancelledError, HTTPError):
            responses.cancel()  # type: ignore[no-untyped-call]  # Ray leaves cancel unannotated
            raise
        except Exception as exc:  # noqa: BLE001 - every Ray failure becomes an HTTP error
            raise self._http_error(exc) from None

    def _settle(self, future: Future[T], task: asyncio.Task[T]) -> None:
        self._tasks.discard(task)
        with suppress(InvalidStateError):  # the caller cancelled, or stop() answered first
            if task.cancelled():
                future.set_exception(shutting_down(self.name))
            elif (error := task.exception()) is not None:
                future.set_exception(error)
            else:
                future.set_result(task.result())

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _http_error(self, exc: Exception) -> HTTPError:
        """Ray's failure as the error contract; the traceback goes to the log, never to the client."""
        if isinstance(exc, serve_errors.BackPressureError):
            queued = self.deployment_options.get("max_queued_requests")
            message = f"model {self.name} is overloaded: {queued} requests already queued"
            if exc.retry_after_s is None:
                return unavailable(message)
            return unavailable(message, retry_after_s=math.ceil(exc.retry_after_s))
        if isinstance(exc, REPLICA_LOST):
            logger.warning("model %s: Ray replica lost: %s", self.name, exc)
            return unavailable(f"model {self.name}: its Ray replica was lost ({type(exc).__name__}); retry")
        logger.error("model %s: Ray call failed", self.name, exc_info=exc)
        cause: Any = getattr(exc, "cause", None) or exc
        return HTTPError(500, f"model {self.name}: Ray call failed: {type(cause).__name__}")


def _end_stream(name: str, stream: Stream, fed: Future[None]) -> None:
    """How the feed ended is how the stream ends: complete, or with its error (a reader that left needs none)."""
    error = None if fed.cancelled() else fed.exception()
    if error is None or isinstance(error, HTTPError):
        stream.end(error)
    else:  # the feed raises HTTP errors only; anything else is a bug here, never a hang for the reader
        logger.error("model %s: the stream's feed failed", name, exc_info=error)
        stream.end(HTTPError(500, f"model {name}: the stream failed: {type(error).__name__}"))


def _cancel_on_cancel(task: asyncio.Task[Any], future: Future[Any]) -> None:
    """A caller that gave up (deadline, client gone) cancels the Ray request too."""
    loop = task.get_loop()
    if future.cancelled() and not loop.is_closed():
        with suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(task.cancel)
