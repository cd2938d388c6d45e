"""The toy model of examples/batched.py on Ray Serve, for bench/pool.py.

    python -m bench.apps.pool_ray --port P

Starts a local Ray instance, Ray Serve's HTTP proxy on 127.0.0.1:P and one
replica of ``Doubler``; ``POST /double`` with ``{"x": 2}`` answers
``{"y": 4.0}``. Batching is ``@serve.batch(max_batch_size=32,
batch_wait_timeout_s=0.005)`` on an async method whose body calls
``time.sleep(0.010)`` once per batch: the sleep blocks the replica's
user-code event loop for 10 ms, as a real (CPU- or GPU-bound, non-async)
model would, so nothing else in the replica runs meanwhile.
``max_ongoing_requests=128`` so that batches can fill at every measured
concurrency. Access logs are off and Serve logs at WARNING, as the other
servers in the bench run without access logs. ``--async-sleep`` (a
diagnostic row only) awaits ``asyncio.sleep(0.010)`` instead, which lets
the replica's loop take requests during the batch. ``address="local"`` always starts a fresh local Ray instance
(never joins one already running on the machine). Prints ``READY`` when deployed; on SIGTERM or SIGINT shuts
Serve and Ray down (``serve.shutdown()``, ``ray.shutdown()``) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time

BATCH_COST_S = 0.010


def _sleep_cost() -> None:
    time.sleep(BATCH_COST_S)


def build(max_ongoing_requests: int, async_sleep: bool = False):
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(num_replicas=1, max_ongoing_requests=max_ongoing_requests,
                      ray_actor_options={"num_cpus": 0},
                      logging_config={"enable_access_log": False, "log_level": "WARNING"})
    class Doubler:
        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
        async def double(self, xs: list[float]) -> list[float]:
            from bench.diagnostics import batch_log  # in the replica; PYTHONPATH carries the repo root

            batch_log.record(len(xs))  # a counter; written to a file only under --batch-stats
            if async_sleep:
                await asyncio.sleep(BATCH_COST_S)  # diagnostic only: yields to the replica's loop
            else:
                _sleep_cost()  # blocks the replica for the batch's 10 ms, like a real model
            return [x * 2 for x in xs]

        async def __call__(self, request: Request) -> dict:
            body = await request.json()
            return {"y": await self.double(float(body["x"]))}

    return Doubler.bind()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-ongoing-requests", type=int, default=128)
    parser.add_argument("--async-sleep", action="store_true",
                        help="await asyncio.sleep(0.010) instead of time.sleep (diagnostic: a model that yields)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray
    from ray import serve

    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
             num_cpus=os.cpu_count())
    # After ray.init: Ray's core worker installs its own SIGTERM handler, which dies on the spot
    # and leaves agents behind. Ours lets the finally-block shut Serve and Ray down in order.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": args.host, "port": args.port},
                    logging_config={"enable_access_log": False, "log_level": "WARNING"})
        serve.run(build(args.max_ongoing_requests, args.async_sleep), name="pool", route_prefix="/double")
        print("READY", flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
