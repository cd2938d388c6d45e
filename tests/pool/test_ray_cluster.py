"""pool="ray" across two Ray nodes: a head that hosts no model (the web host) and a model node, on loopback.

The head starts with no CPUs; the model node joins it with the
``model_host`` resource that the model's replicas ask for, so every
replica runs there. flask under gunicorn -w 2 and starlette under uvicorn
connect to the head with ``UTILSERVE_RAY_ADDRESS`` and share the replicas.
The head checks its nodes' health every half second, three misses in a
row: a lost model node is known within seconds (Ray's default is 5 misses
of a 3 s period). Every process is started here and stopped by its pid.
"""

from __future__ import annotations

import collections
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

from ..support import tally
from ..support.cells import cell_named, gunicorn
from ..support.models.log import events
from ..support.models.ray import MODEL_HOST
from ..support.network import interfaces
from ..support.pool_over_http import wait_ready
from ..support.ray_nodes import HEALTH_CHECKS, LOOPBACK, RayNode
from ..support.servers import Cell, Server, serve

pytest.importorskip("utilserve.pool.ray.replica", reason="pool='ray' needs the [ray] extra")
ray_cluster = pytest.importorskip("utilserve.pool.ray.cluster")

APP = "tests.apps.pool_ray_cluster:app"
CELLS = [Cell("flask@gunicorn", "flask", gunicorn(2, 8)), cell_named("starlette@uvicorn")]
MULTI_NODE = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
"""LOOPBACK's ``0`` keeps a one-node cluster on 127.0.0.1 by refusing any node that would join it."""
ANSWER_WITHIN_S = 10.0
"""While a model node is lost, each request is answered within this: 200 from a replica still alive, else 503."""


@dataclass
class TwoNodes:
    head: RayNode
    log: Path
    model_nodes: list[RayNode] = field(default_factory=list)
    servers: dict[str, Server] = field(default_factory=dict)

    def join_model_node(self) -> RayNode:
        env = {"MODEL_LOG": str(self.log), **MULTI_NODE}
        node = RayNode(env, num_cpus=2, head=self.head, resources={MODEL_HOST: 1})
        self.model_nodes.append(node.start())
        return node

    def batches(self, since: int = 0) -> list[dict]:
        return events(self.log, since, model="placed")

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def stop(self) -> list[int]:
        """Everything, web servers first; returns the pids of the cluster still alive."""
        for server in self.servers.values():
            server.stop()
        ray_cluster.lock_path(self.head.address).unlink(missing_ok=True)
        left = [pid for node in self.model_nodes for pid in node.stop()]
        return left + self.head.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    log = tmp_path_factory.mktemp("ray-cluster") / "model.log"
    state = TwoNodes(RayNode({"MODEL_LOG": str(log), **HEALTH_CHECKS, **MULTI_NODE}, num_cpus=0).start(), log)
    try:
        state.join_model_node()
        env = {**LOOPBACK, **MULTI_NODE, "UTILSERVE_RAY_ADDRESS": state.head.address}
        for cell in CELLS:
            state.servers[cell.name] = serve(cell, APP, env=env)
        for server in state.servers.values():
            wait_ready(server, timeout=180, in_a_row=4)
        yield state
    finally:
        state.stop()


def post(client: httpx.Client, server: Server, x: int) -> httpx.Response:
    return client.post(server.url + "/placed", json={"x": x})


def test_batches_form_on_the_model_node_from_both_web_servers(cluster: TwoNodes) -> None:
    since = cluster.mark()
    flask, starlette = (cluster.servers[cell.name] for cell in CELLS)
    ranges = {"flask": range(200), "starlette": range(1000, 1200)}
    xs = [x for pair in zip(*ranges.values(), strict=True) for x in pair]
    limits = httpx.Limits(max_connections=64, keepalive_expiry=1.0)
    with httpx.Client(timeout=60, limits=limits) as client, ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda x: post(client, flask if x < 1000 else starlette, x), xs))
    assert [answer.json() for answer in answers] == [{"y": 2 * x} for x in xs]
    batches = cluster.batches(since)
    assert max(len(batch["xs"]) for batch in batches) > 1, batches
    mixed = [batch for batch in batches if {x >= 1000 for x in batch["xs"]} == {False, True}]
    sizes = {"batches": len(batches), "largest": max(len(batch["xs"]) for batch in batches), "mixed": len(mixed)}
    tally.add("batches on the model node", "400 requests, 200 per web server", sizes)
    assert mixed, "a batch held requests of both web servers"
    replicas = {batch["pid"] for batch in batches}
    assert replicas <= set(cluster.model_nodes[-1].pids()), (replicas, "every batch ran on the model node")
    assert sum(len(batch["xs"]) for batch in batches) == 400


def tcp_peers() -> dict[str, int]:
    """The remote addresses of this namespace's TCP sockets, by count, from the kernel's own tables."""
    peers: collections.Counter[str] = collections.Counter()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            remote = line.split()[2].partition(":")[0]
            peers[_address(remote, width)] += 1
    return dict(peers)


def _address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]  # each 32-bit word in host order
    packed = b"".join(words)
    if width == 8:
        return ".".join(str(b) for b in packed)
    if packed[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in packed[12:])
    return ":".join(packed[i : i + 2].hex() for i in range(0, 16, 2))


def test_every_connection_of_the_cluster_stays_on_loopback(cluster: TwoNodes) -> None:
    """In the run's own network namespace every TCP socket is the run's: Ray's, the servers', the clients'."""
    if interfaces() != ["lo"]:
        pytest.skip(f"the run shares the host's network ({interfaces()}): other programs' sockets would show")
    assert cluster.servers and cluster.head.pids() and cluster.model_nodes[-1].pids()
    peers = tcp_peers()
    unspecified = {"0.0.0.0", "0000:0000:0000:0000:0000:0000:0000:0000"}  # listening sockets have no peer
    loopback = {"127.0.0.1", "0000:0000:0000:0000:0000:0000:0000:0001"}
    assert set(peers) - unspecified <= loopback, peers
    ss = subprocess.run(["ss", "-tn", "state", "established"], capture_output=True, text=True, check=False).stdout
    remote = collections.Counter(line.split()[-1].rpartition(":")[0] for line in ss.splitlines()[1:] if line)
    tally.add("ss -tn", "two Ray nodes, two web servers", {f"peer {peer}": n for peer, n in sorted(remote.items())})
    assert set(remote) <= {"127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"}, ss


def load(server: Server, seconds: float, concurrency: int = 4) -> list[tuple[float, int | str]]:
    """Requests back to back from ``concurrency`` threads for ``seconds``: when each began, and its status."""
    end = time.monotonic() + seconds

    def run(offset: int) -> list[tuple[float, int | str]]:
        answered: list[tuple[float, int | str]] = []
        with httpx.Client(timeout=ANSWER_WITHIN_S) as client:
            x = offset
            while (began := time.monotonic()) < end:
                try:
                    response = post(client, server, x)
                except httpx.TimeoutException:
                    answered.append((began, f"no answer within {ANSWER_WITHIN_S:g} s"))
                    continue
                if response.status_code == 503:
                    assert response.headers.get("retry-after"), response.headers
                    assert response.json()["error"]["status"] == 503, response.text
                    time.sleep(0.1)  # a client that heeds Retry-After, if not for all of it
                elif response.status_code == 200:
                    assert response.json() == {"y": 2 * x}
                answered.append((began, response.status_code))
                x += 1
        return answered

    with ThreadPoolExecutor(concurrency) as pool:
        return [answer for answers in pool.map(run, range(0, concurrency * 10**6, 10**6)) for answer in answers]


def test_a_lost_model_node_is_503_within_seconds_and_a_returning_one_serves_again(cluster: TwoNodes) -> None:
    lost = cluster.model_nodes[-1]
    with ThreadPoolExecutor(len(cluster.servers)) as loaders:
        loading = [loaders.submit(load, server, 14.0) for server in cluster.servers.values()]
        time.sleep(2.0)
        killed_at = time.monotonic()
        os.kill(lost.raylet(), signal.SIGKILL)
        answers = [answer for future in loading for answer in future.result()]
    after = [status for began, status in sorted(answers, key=lambda answer: answer[0]) if began > killed_at]
    counts = collections.Counter(status for _, status in answers)
    assert set(counts) <= {200, 503}, counts
    assert 503 in after[-8:], ("the last requests found no replica", collections.Counter(after))
    first_503_ms = int(1000 * (min(began for began, status in answers if status == 503) - killed_at))
    seen = {str(status): n for status, n in sorted(counts.items())} | {"first 503 sent, ms from kill": first_503_ms}
    tally.add("model node lost", "two web servers, 4 clients each", seen)

    returned = cluster.join_model_node()
    since = cluster.mark()
    for server in cluster.servers.values():
        deadline = time.monotonic() + 180
        while (answer := httpx.post(server.url + "/placed", json={"x": 7}, timeout=60)).status_code != 200:
            assert answer.status_code == 503, answer.text
            assert time.monotonic() < deadline, "no replica served after the model node returned"
            time.sleep(0.5)
        assert answer.json() == {"y": 14}
    assert {batch["pid"] for batch in cluster.batches(since)} <= set(returned.pids())


def test_stopping_leaves_no_ray_process(cluster: TwoNodes) -> None:
    nodes = [cluster.head, *cluster.model_nodes]
    assert cluster.stop() == []
    cluster.servers.clear()
    cluster.model_nodes.clear()
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True).stdout
    ours = [
        line
        for line in ps.splitlines()
        if any(str(node.temp_dir) in line for node in nodes) and not line.startswith("Z")
    ]
    assert ours == [], "ps still lists processes of the cluster"
