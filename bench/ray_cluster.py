"""The Ray pool across two nodes: the toy model of ``bench.pool`` through a two-node cluster and a local Ray.

Both rows are starlette under uvicorn with ``pool="ray"``. The local row's
server starts a private Ray of its own, as in ``bench.pool``. The cluster
row's server joins a head with no CPUs (the web host's node) and its one
replica runs on a second node, as ``deploy/ray/`` lays them out: each
request crosses from the web process to another node's raylet and replica.
Both nodes run on this machine, on loopback, so the row shows what the
hop between Ray nodes costs, not a network's latency. Where it may (as
root), the bench first moves into a network namespace of its own, as the
tests do, so no connection can leave loopback. One server alive at a time;
the cluster runs only for its own row.
"""

import datetime as dt
import sys

from tests.support.network import enter_private_network
from tests.support.ray_nodes import LOOPBACK, RayNode
from tests.support.servers import exit_on_sigterm

from . import report, serving
from .loadgen import UVICORN
from .pool import LIBRARIES, LOAD_COLUMNS, SOURCES, Result, add_load_options, load_cells, measure
from .serving import Row

SECTION = "## Ray across two nodes"
MULTI_NODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1"
RAY = f"UTILSERVE_BACKEND=starlette UTILSERVE_POOL=ray RAY_USAGE_STATS_ENABLED=0 {UVICORN}"

LOCAL = Row(
    "local",
    "starlette, uvicorn; Ray pool, 1 replica, on a private local Ray that the server starts",
    RAY,
    "starlette uvicorn ray",
    start_timeout=180,
    stop_timeout=40,
)


def cluster_row(address: str) -> Row:
    return Row(
        "two-nodes",
        "starlette, uvicorn on the head (0 CPUs); Ray pool, 1 replica on a second node (2 CPUs), both on loopback",
        f"UTILSERVE_RAY_ADDRESS={address} {MULTI_NODE} {RAY}",
        "starlette uvicorn ray",
        start_timeout=180,
        stop_timeout=40,
    )


def measure_on_two_nodes(concurrency: list[int], duration: int, runs: int) -> Result:
    """Start the two nodes, measure the row that joins them, stop every process of both by pid."""
    multi_node = dict([MULTI_NODE.split("=")])
    head = RayNode({**LOOPBACK, **multi_node}, num_cpus=0).start()
    try:
        node = RayNode({**LOOPBACK, **multi_node}, num_cpus=2, head=head).start()
        try:
            return measure(cluster_row(head.address), concurrency, duration, runs)
        finally:
            node.stop()
    finally:
        head.stop()


def main() -> int:
    parser = report.parser("bench.ray_cluster", __doc__)
    add_load_options(parser)
    args = parser.parse_args()
    exit_on_sigterm()
    refused = enter_private_network()
    network = f"the host's network ({refused})" if refused else "a private network namespace, loopback only"
    print(f"network: {network}", flush=True)
    started, load_start = dt.datetime.now(dt.UTC), report.loadavg()
    print(f"{LOCAL.name}: {LOCAL.stack}", flush=True)
    results = [measure(LOCAL, args.concurrency, args.duration, args.runs)]
    print("two-nodes: starting a head and a model node", flush=True)
    results.append(measure_on_two_nodes(args.concurrency, args.duration, args.runs))
    load = (load_start, report.loadavg())
    rows = [line for r in results for line in serving.lines(r.row, [load_cells(load) for load in r.loads], 6)]
    ratios = [
        f"- c={a.connections}: two nodes ÷ local = {b.rps / a.rps:.2f} by req/s, "
        f"p50 {b.p50_ms:.2f} ms against {a.p50_ms:.2f} ms"
        for a, b in zip(results[0].loads, results[1].loads, strict=False)
        if a.rps
    ]
    lines = [
        "The toy model of `bench.pool` (each batch of up to 32 items costs 10 ms, so at most 3,200 items/s) through "
        "utilserve's Ray pool, once on a private local Ray and once through two Ray nodes: a head with no CPUs "
        "where the web server runs, and a node with 2 CPUs where the replica runs. Both nodes are on this machine "
        f"and talk over loopback. Load as in `bench.pool`: wrk, closed loop, {args.duration} s per cell after a "
        f"warm-up, {args.runs} runs per cell, the median shown. In the two-node row the nodes' own processes "
        "(raylets, GCS, the replica) are not the server's: their CPU shows under other.",
        "",
        *report.setting(
            started, f"{report.machine()}. wrk runs on the same CPUs. Network: {network}.", LIBRARIES, SOURCES, load
        ),
        "",
        *report.table(f"stack | server, pool | {LOAD_COLUMNS}", rows),
        *report.block("Side by side, same run:", ratios),
        "",
        serving.startup(results, "launch to first successful POST"),
    ]
    report.publish(SECTION, lines + serving.problems(results, []), not args.no_write)
    return 1 if any(r.error or r.survivors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
