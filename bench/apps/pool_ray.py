"""The toy model of examples/batched.py on Ray Serve, for ``bench.pool``.

    python -m bench.apps.pool_ray --port P

A fresh local Ray (never one already running); each batch blocks the
replica's event loop for 10 ms, as a real model would.
``max_ongoing_requests=128`` lets batches fill at every measured
concurrency; access logs are off, as in the other servers.
"""

import argparse
import os
import signal
import threading
import time

import ray
from ray import serve
from starlette.requests import Request

from bench.diagnostics import batch_log

BATCH_COST_S = 0.010
LOGGING = {"enable_access_log": False, "log_level": "WARNING"}


@serve.deployment(num_replicas=1, max_ongoing_requests=128, ray_actor_options={"num_cpus": 0}, logging_config=LOGGING)
class Doubler:
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def double(self, xs: list[float]) -> list[float]:
        batch_log.record(len(xs))
        time.sleep(BATCH_COST_S)
        return [x * 2 for x in xs]

    async def __call__(self, request: Request) -> dict:
        return {"y": await self.double(float((await request.json())["x"]))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    ray.init(
        address="local", include_dashboard=False, log_to_driver=False, configure_logging=False, num_cpus=os.cpu_count()
    )
    stop = threading.Event()  # set after ray.init, whose own handler exits at once and leaves Ray's agents behind
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=LOGGING)
        serve.run(Doubler.bind(), name="pool", route_prefix="/double")  # type: ignore[attr-defined]  # bind() is added by @serve.deployment
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
