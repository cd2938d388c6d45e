"""pool="ray" over real HTTP: a local Ray cluster, models on Ray Serve replicas, two kinds of server in front.

One cluster and one server per cell serve the whole module: the first
server deploys the models, the second finds them deployed. The last test
stops everything and checks that no process of the cluster is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from utilserve import Model

from ..support.cells import cell_named, gunicorn
from ..support.models.log import events
from ..support.models.thread import LONG
from ..support.pool_over_http import assert_overload_is_503_then_recovers, burst
from ..support.ray_head import LOOPBACK, RayHead
from ..support.servers import Cell, Server, serve

ray_replica = pytest.importorskip("utilserve.pool.ray.replica", reason="pool='ray' needs the [ray] extra")
ray_cluster = pytest.importorskip("utilserve.pool.ray.cluster")

APP = "tests.apps.pool_ray:app"
CELLS = [Cell("flask@gunicorn", "flask", gunicorn(2, 64)), cell_named("starlette@uvicorn")]
"""The matrix's gunicorn with enough threads to overload a model's queue, and starlette@uvicorn."""
PROCESSES = {"flask@gunicorn": 2, "starlette@uvicorn": 1}
IDS = [cell.name for cell in CELLS]


@dataclass
class Cluster:
    head: RayHead
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
    state = Cluster(RayHead({"MODEL_LOG": str(log)}).start(), log)
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
    defaults = {"num_replicas": 3, "max_ongoing_requests": 32, "max_queued_requests": 64}
    assert ray_replica.deployment_options(Toy, 3) == defaults

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


def test_stopping_leaves_no_ray_process(cluster: Cluster) -> None:
    for cell in CELLS:
        cluster.server(cell)
    assert cluster.head.pids(), "the cluster runs"
    assert stop_all(cluster) == []
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True).stdout
    ours = [line for line in ps.splitlines() if str(cluster.head.temp_dir) in line and not line.startswith("Z")]
    assert ours == [], "ps still lists processes of the cluster"
