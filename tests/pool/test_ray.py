"""pool="ray" over real HTTP: a local Ray cluster, models on Ray Serve replicas, two kinds of server in front.

One cluster and one server per cell serve the whole module: the first
server deploys the models, the second finds them deployed. The last test
stops everything and checks that no process of the cluster is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from utilserve import Model

from ..support.cells import cell_named, gunicorn
from ..support.models.log import events
from ..support.models.thread import LONG
from ..support.pool_over_http import assert_overload_is_503_then_recovers, assert_sigterm_drains, burst, wait_ready
from ..support.ray_nodes import LOOPBACK, RayNode
from ..support.servers import Cell, Server, serve

ray_replica = pytest.importorskip("utilserve.pool.ray.replica", reason="pool='ray' needs the [ray] extra")
ray_cluster = pytest.importorskip("utilserve.pool.ray.cluster")

APP = "tests.apps.pool_ray:app"
CELLS = [Cell("flask@gunicorn", "flask", gunicorn(2, 64)), cell_named("starlette@uvicorn")]
"""The matrix's gunicorn with enough threads to overload a model's queue, and starlette@uvicorn."""
PROCESSES = {"flask@gunicorn": 2, "starlette@uvicorn": 1}
STREAMS = {"flask@gunicorn": "/api/count", "starlette@uvicorn": "/api/acount"}
"""Counting's endpoints: the blocking ``handle.stream`` under WSGI, ``handle.astream`` under ASGI."""
IDS = [cell.name for cell in CELLS]


@dataclass
class Cluster:
    head: RayNode
    log: Path
    servers: dict[str, Server] = field(default_factory=dict)

    def server(self, cell: Cell) -> Server:
        """The cell's server, started on first use with every web worker connected and ready."""
        if cell.name not in self.servers:
            env = {**LOOPBACK, "UTILSERVE_RAY_ADDRESS": self.head.address, "MODEL_LOG": str(self.log)}
            self.servers[cell.name] = serve(cell, APP, env=env)
            warm(self.servers[cell.name], PROCESSES[cell.name])
        return self.servers[cell.name]

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def events(self, model: str, since: int = 0) -> list[dict]:
        return events(self.log, since, model=model)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    log = tmp_path_factory.mktemp("ray") / "model.log"
    state = Cluster(RayNode({"MODEL_LOG": str(log)}).start(), log)
    try:
        yield state
    finally:
        stop_all(state)


def stop_all(state: Cluster) -> list[int]:
    for server in state.servers.values():
        server.stop()
    state.servers.clear()
    ray_cluster.lock_path(state.head.address).unlink(missing_ok=True)
    return state.head.stop()


def warm(server: Server, processes: int, timeout: float = 180.0) -> None:
    """WSGI workers start their models on their first request: reach each one until all say ready."""
    ready: set[int] = set()
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(8) as pool:
        while len(ready) < processes:
            assert time.monotonic() < deadline, f"web workers never all ready ({ready}):\n{server.output()}"
            answers = pool.map(lambda _: httpx.get(server.url + "/api/whoami", timeout=30).json(), range(8))
            ready |= {answer["pid"] for answer in answers if answer["ready"]}
            time.sleep(0.2)


def assert_contract(response: httpx.Response, status: int) -> None:
    """The error contract's body, and nothing of Ray's in it."""
    assert response.status_code == status, response.text
    assert response.json()["error"]["status"] == status
    assert "Traceback" not in response.text and "ray." not in response.text, response.text


class Number(BaseModel):
    x: int


class Toy(Model):
    Input = Output = Number
    max_batch_size = 16
    max_queue = 64

    def predict(self, batch: list[Number]) -> list[Number]:
        return batch


def test_model_settings_and_ray_options_become_deployment_options() -> None:
    backoff = ray_replica.ROUTER_BACKOFF
    defaults = {"num_replicas": 3, "max_ongoing_requests": 32, "max_queued_requests": 64}
    assert ray_replica.deployment_options(Toy, 3) == {**defaults, "request_router_config": backoff}

    class Scaled(Toy):
        ray_options = {
            "ray_actor_options": {"num_cpus": 2, "num_gpus": 1},
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 4},
            "max_ongoing_requests": 16,
        }

    assert ray_replica.deployment_options(Scaled, 3) == {
        "ray_actor_options": {"num_cpus": 2, "num_gpus": 1},
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4},
        "max_ongoing_requests": 16,
        "max_queued_requests": 64,
        "request_router_config": backoff,
    }


def test_ray_options_that_would_break_batching_or_naming_are_refused() -> None:
    class Starved(Toy):
        ray_options = {"max_ongoing_requests": 4}

    class Renamed(Toy):
        ray_options = {"name": "other"}

    with pytest.raises(ValueError, match="max_ongoing_requests=4 must be an int >= max_batch_size"):
        ray_replica.deployment_options(Starved, 1)
    with pytest.raises(ValueError, match="must not set 'name'"):
        ray_replica.deployment_options(Renamed, 1)
    with pytest.raises(TypeError, match="ray_options must be a dict"):
        type("Listed", (Toy,), {"ray_options": [("num_replicas", 2)]})


def test_serve_details_read_as_plain_states() -> None:
    """The dict behind ``serve.status()``, with Ray's enums or with their values as its REST API sends them."""
    from ray.serve.schema import ApplicationStatus, DeploymentStatus, ReplicaState

    details = {
        "applications": {
            "tests.Doubler": {
                "status": ApplicationStatus.RUNNING,
                "deployments": {
                    "Doubler": {
                        "status": DeploymentStatus.UNHEALTHY,
                        "message": "a replica's node died",
                        "replicas": [{"state": ReplicaState.RUNNING}, {"state": ReplicaState.STARTING}],
                    }
                },
            },
            "tests.Failing": {
                "status": "DEPLOY_FAILED",
                "deployments": {"Failing": {"status": "DEPLOY_FAILED", "message": None, "replicas": []}},
            },
        }
    }
    found = ray_cluster.applications(details)
    doubler, failing = found["tests.Doubler"], found["tests.Failing"]
    assert doubler.status == ApplicationStatus.RUNNING
    assert doubler.deployments["Doubler"] == ray_cluster.DeploymentState(
        DeploymentStatus.UNHEALTHY, "a replica's node died", running=1
    )
    assert failing.status == ApplicationStatus.DEPLOY_FAILED
    assert failing.deployments["Failing"] == ray_cluster.DeploymentState(DeploymentStatus.DEPLOY_FAILED, "", 0)
    assert ray_cluster.applications({}) == {}


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_batches_form_on_two_replicas(cluster: Cluster, cell: Cell) -> None:
    server = cluster.server(cell)
    since = cluster.mark()
    responses = burst(server, "/api/batching", [{"x": i} for i in range(256)], threads=64)
    assert [r.json() for r in responses] == [{"y": 2 * i} for i in range(256)]
    batches = cluster.events("batching", since)
    sizes = [e["size"] for e in batches]
    assert sum(sizes) == 256
    assert 1 < max(sizes) <= 8, sizes
    replicas = {e["pid"] for e in cluster.events("batching") if e.get("event") == "setup"}
    assert len(replicas) == 2, replicas
    assert {e["pid"] for e in batches} == replicas, "both replicas receive work"


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_overload_answers_503_with_retry_after(cluster: Cluster, cell: Cell) -> None:
    assert_overload_is_503_then_recovers(cluster.server(cell))


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_deadline_is_504_and_never_reaches_the_model(cluster: Cluster, cell: Cell) -> None:
    server = cluster.server(cell)
    since = cluster.mark()
    with ThreadPoolExecutor(6) as pool:
        blockers = [pool.submit(httpx.get, server.url + f"/api/slow?x={100 + i}", timeout=30) for i in range(6)]
        time.sleep(0.02)
        late = httpx.get(server.url + "/api/slow?x=77&timeout=0.03", timeout=30)
        assert [b.result().status_code for b in blockers] == [200] * 6
    assert_contract(late, 504)
    assert late.json()["error"]["message"] == "model Slow did not answer within 0.03 s"
    time.sleep(0.2)
    assert 77 not in [x for e in cluster.events("slow", since) for x in e["seen"]]


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_model_errors_keep_their_status_and_message(cluster: Cluster, cell: Cell) -> None:
    server = cluster.server(cell)
    responses = burst(server, "/api/picky", [{"x": x} for x in (1, -2, 3, -4)], threads=4)
    assert [r.status_code for r in responses] == [200, 400, 200, 400]
    assert responses[0].json() == {"y": 2}
    assert responses[1].json() == {"error": {"status": 400, "message": "model Picky: ValueError: -2 is negative"}}
    whole = httpx.post(server.url + "/api/picky", json={"x": 999}, timeout=30)
    assert whole.json() == {"error": {"status": 409, "message": "999 is too big"}}


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_lost_replica_is_503_then_replaced(cluster: Cluster, cell: Cell) -> None:
    """Killing the only Slow replica mid-item fails the items it held as 503; Ray starts another.

    The kill waits until the replica has run a long item for a while: Ray
    re-routes a request whose replica dies before accepting it, so an
    early kill could be answered 200 by the next replica.
    """
    server = cluster.server(cell)
    until_served(server)
    since = cluster.mark()
    xs = [LONG + i for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        inflight = [pool.submit(httpx.get, server.url + f"/api/slow?x={x}", timeout=60) for x in xs]
        deadline = time.monotonic() + 10
        while not (seen := cluster.events("slow", since)):
            assert time.monotonic() < deadline, f"no request reached the replica: {[f.done() for f in inflight]}"
            time.sleep(0.005)
        time.sleep(0.5)
        os.kill(seen[0]["pid"], signal.SIGKILL)
        answers = [future.result() for future in inflight]
    lost = [a for a in answers if a.status_code != 200]
    assert lost, [a.text for a in answers]
    for answer in lost:
        assert_contract(answer, 503)
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["message"].startswith("model Slow"), answer.text
    for x, answer in zip(xs, answers, strict=True):
        assert answer.status_code == 503 or answer.json() == {"y": 2 * x}
    assert until_served(server) == {"y": 18}
    assert {e["pid"] for e in cluster.events("slow", since)} - {seen[0]["pid"]}, "a new replica served"


def until_served(server: Server, timeout: float = 90.0) -> dict:
    """Ask Slow through this server until a replica answers: 503s in between, nothing else."""
    deadline = time.monotonic() + timeout
    while (answer := httpx.get(server.url + "/api/slow?x=9", timeout=60)).status_code != 200:
        assert_contract(answer, 503)
        assert time.monotonic() < deadline, "no replica of Slow answered"
        time.sleep(0.2)
    return answer.json()


Event = tuple[str, dict]


@contextmanager
def counting(server: Server, cell: Cell, **item: object) -> Iterator[Iterator[Event]]:
    """Counting's answer to ``item`` as (event, data) pairs while they arrive; leaving the block hangs up."""
    with (
        httpx.Client(timeout=60) as client,
        client.stream("GET", server.url + STREAMS[cell.name], params=item) as response,
    ):
        assert response.status_code == 200, response.read()
        yield events_of(response.iter_lines())


def events_of(lines: Iterator[str]) -> Iterator[Event]:
    event = "message"
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))
            event = "message"


def steps(cluster: Cluster, since: int) -> list[list[str]]:
    """The tags of the items each of Counting's steps held, in order."""
    return [event["step"] for event in cluster.events("counting", since) if "step" in event]


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_a_streaming_model_streams_its_outputs_in_order(cluster: Cluster, cell: Cell) -> None:
    server = cluster.server(cell)
    with counting(server, cell, tag="order", n=5) as outputs:
        assert list(outputs) == [("message", {"tag": "order", "i": i}) for i in range(5)]


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_an_item_that_starts_while_another_streams_joins_its_steps(
    cluster: Cluster, cell: Cell, tmp_path: Path
) -> None:
    server, since, release = cluster.server(cell), cluster.mark(), tmp_path / "release-a"
    with counting(server, cell, tag="a", n=1, until=str(release), step_ms=10) as first:
        assert next(first) == ("message", {"tag": "a", "i": 0})
        with counting(server, cell, tag="b", n=3) as second:
            assert [data["i"] for _, data in second] == [0, 1, 2]  # a is still running
        release.touch()
        assert {event for event, _ in first} == {"message"}  # a ends once released
    assert ["a", "b"] in [sorted(step) for step in steps(cluster, since)]


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_an_error_stays_with_its_item(cluster: Cluster, cell: Cell, tmp_path: Path) -> None:
    server, release = cluster.server(cell), tmp_path / "release-good"
    with counting(server, cell, tag="good", n=4, until=str(release), step_ms=10) as good:
        assert next(good) == ("message", {"tag": "good", "i": 0})
        with counting(server, cell, tag="bad", n=5, fail_at=2) as bad:
            failed = {"error": {"status": 400, "message": "model Counting: Miscounted: bad failed at 2"}}
            assert list(bad) == [
                ("message", {"tag": "bad", "i": 0}),
                ("message", {"tag": "bad", "i": 1}),
                ("error", failed),
            ]
        release.touch()
        rest = list(good)
    assert {event for event, _ in rest} == {"message"} and rest[-1][1]["i"] >= 3, rest[-3:]


@pytest.mark.parametrize("cell", CELLS, ids=IDS)
def test_a_closed_stream_leaves_the_replicas_steps(cluster: Cluster, cell: Cell, tmp_path: Path) -> None:
    """The client hangs up on ``gone``: its Ray call is cancelled, and ``stays`` steps on without it."""
    server, since, release = cluster.server(cell), cluster.mark(), tmp_path / "release-stays"
    with ExitStack() as open_calls:
        with counting(server, cell, tag="gone", n=1_000_000, step_ms=10) as gone:
            assert next(gone) == ("message", {"tag": "gone", "i": 0})
            stays = open_calls.enter_context(counting(server, cell, tag="stays", n=1, until=str(release), step_ms=10))
            assert next(stays) == ("message", {"tag": "stays", "i": 0})
        deadline = time.monotonic() + 60
        while not (alone := [i for i, step in enumerate(steps(cluster, since)) if step == ["stays"]]):
            assert time.monotonic() < deadline, f"gone never left the steps: {steps(cluster, since)[-3:]}"
            time.sleep(0.05)
        release.touch()
        assert {event for event, _ in stays} == {"message"}
    after = steps(cluster, since)[alone[0] :]
    assert all("gone" not in step for step in after), after


def test_sigterm_to_uvicorn_answers_every_request_in_flight_and_runs_the_shutdown_hook(
    cluster: Cluster, model_log: Path, running: Callable[[Server], Server]
) -> None:
    """Ray's own signal handlers would abort the web process at SIGTERM; uvicorn's drain must run instead."""
    env = {**LOOPBACK, "UTILSERVE_RAY_ADDRESS": cluster.head.address, "UTILSERVE_POOL": "ray"}
    server = running(serve(cell_named("starlette@uvicorn"), "tests.apps.draining:app", env=env))
    wait_ready(server, timeout=180)
    assert_sigterm_drains(server, model_log)
    assert "SIGTERM received" not in server.output()


def test_stopping_leaves_no_ray_process(cluster: Cluster) -> None:
    for cell in CELLS:
        cluster.server(cell)
    assert cluster.head.pids(), "the cluster runs"
    assert stop_all(cluster) == []
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True).stdout
    ours = [line for line in ps.splitlines() if str(cluster.head.temp_dir) in line and not line.startswith("Z")]
    assert ours == [], "ps still lists processes of the cluster"
