"""examples/batched.py with a model that counts its batch sizes, for ``bench.pool --batch-stats``.

The same Service shape as ``examples.batched`` (``POST /double`` with
``{"x": 2}`` -> ``{"y": 4.0}``, backend from ``UTILSERVE_BACKEND``, pool
from ``UTILSERVE_POOL``); the model is ``examples.batched.Doubler`` that also
records each batch's size and a breakdown of its cycle (see
bench/diagnostics/batch_log.py). Used to check which batch sizes actually form
under load, never for the headline numbers.

Two knobs, for bench/pool.py's diagnostic rows only:

- ``BENCH_SYNC_ENDPOINT=1``: ``POST /double`` is a plain ``def`` endpoint
  calling the blocking ``double.predict(item)`` instead of the route that
  ``service.model(..., route=...)`` generates (an ``async def`` awaiting
  ``apredict``, which a WSGI backend runs on a per-thread event loop).
- ``BENCH_SWITCH_INTERVAL=<seconds>``: ``sys.setswitchinterval`` (CPython's
  default is 0.005), how long a thread that wants the GIL waits before
  asking the holder to drop it.
"""

from __future__ import annotations

import os
import sys
import time

from examples.batched import Doubler
from utilserve import API, Service, api

from . import batch_log


class CountingDoubler(Doubler):
    """Doubler that records each batch's size, and where the time of a batch's cycle goes.

    ``sleep``: wall time of the 10 ms ``time.sleep`` (what exceeds 10 ms is the
    wake-up: getting a CPU, then getting the GIL back); ``outputs``: building
    the ``Output`` objects; ``between``: from the end of one ``predict`` to
    the start of the next (resolving the futures, then the batcher gathering
    or waiting for the next batch), leaving out pauses over 50 ms (no load).
    """

    _last_exit: float | None = None

    def predict(self, batch):
        entered = time.perf_counter()
        if self._last_exit is not None and entered - self._last_exit < 0.05:  # longer: no load, not a cycle
            batch_log.record_time("between", entered - self._last_exit)
        batch_log.record(len(batch))
        time.sleep(self.batch_cost_s)
        slept = time.perf_counter()
        outputs = [self.Output(y=item.x * 2) for item in batch]
        done = time.perf_counter()
        batch_log.record_time("sleep", slept - entered)
        batch_log.record_time("outputs", done - slept)
        self._last_exit = done
        return outputs


if os.environ.get("BENCH_SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))

SYNC_ENDPOINT = os.environ.get("BENCH_SYNC_ENDPOINT", "") == "1"

if SYNC_ENDPOINT:

    class Root(API):
        @api.post("/double")
        def double(self, item: CountingDoubler.Input) -> CountingDoubler.Output:
            return handle.predict(item)

    service = Service(__name__, name="batched-instrumented", api=Root, route="/")
    handle = service.model(CountingDoubler, name="Doubler")
else:
    service = Service(__name__, name="batched-instrumented", route="/")
    handle = service.model(CountingDoubler, name="Doubler", route="/double")
app = service.application()
