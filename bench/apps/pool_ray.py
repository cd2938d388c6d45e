"""The toy model of examples/batched.py on Ray Serve, for ``bench.pool``.

    python -m bench.apps.pool_ray --port P

A fresh local Ray (never one already running); each batch blocks the
replica's event loop for 10 ms, as a real model would.
``max_ongoing_requests=128`` lets batches fill at every measured
concurrency; access logs are off, as in the other servers.
"""

import time

from ray import serve
from starlette.requests import Request

from bench.apps import ray_app
from bench.diagnostics import batch_log

BATCH_COST_S = 0.010


@serve.deployment(
    num_replicas=1, max_ongoing_requests=128, ray_actor_options={"num_cpus": 0}, logging_config=ray_app.LOGGING
)
class Doubler:
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def double(self, xs: list[float]) -> list[float]:
        batch_log.record(len(xs))
        time.sleep(BATCH_COST_S)
        return [x * 2 for x in xs]

    async def __call__(self, request: Request) -> dict:
        return {"y": await self.double(float((await request.json())["x"]))}


if __name__ == "__main__":
    ray_app.main(Doubler.bind(), "pool", "/double")  # type: ignore[attr-defined]  # bind() is added by @serve.deployment
