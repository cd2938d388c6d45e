"""A floor for bench/pool.py at concurrency 1: plain Starlette, no batching, no utilserve.

    uvicorn bench.apps.pool_native:app

``POST /double`` with ``{"x": 2}`` -> ``{"y": 4.0}``; each request runs the
model's 10 ms ``time.sleep`` in a worker thread (``asyncio.to_thread``), one
request at a time per thread and never batched. At concurrency 1 its p50 is
what HTTP, wrk and one thread hop add to the 10 ms on this machine; at higher
concurrency it is not comparable (no batching: at most one item per 10 ms per
thread).
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BATCH_COST_S = 0.010


def _predict(x: float) -> float:
    time.sleep(BATCH_COST_S)
    return x * 2


async def double(request: Request) -> Response:
    body = json.loads(await request.body())
    y = await asyncio.to_thread(_predict, float(body["x"]))
    return Response(json.dumps({"y": y}), media_type="application/json")


app = Starlette(routes=[Route("/double", double, methods=["POST"])])
