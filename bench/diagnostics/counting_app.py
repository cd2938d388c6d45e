"""examples/batched.py whose model logs each batch (``batch_log``), for ``bench.diagnostics.pool``.

With its size, a batch's cycle in seconds: ``sleep``, the model's 10 ms (past 10 ms is the wake-up: a CPU,
then the GIL); ``outputs``, building the answers; ``between``, from the end of one batch to the start of the
next, unless that was a pause over 50 ms (no load).
"""

import time

from examples.batched import Doubler
from utilserve import Service

from . import batch_log


class CountingDoubler(Doubler):
    last_exit: float | None = None

    def predict(self, batch: list[Doubler.Input]) -> list[Doubler.Output]:
        entered = time.perf_counter()
        time.sleep(self.batch_cost_s)
        slept = time.perf_counter()
        outputs = [self.Output(y=item.x * 2) for item in batch]
        phases = {"sleep": slept - entered, "outputs": time.perf_counter() - slept}
        if self.last_exit is not None and entered - self.last_exit < 0.05:
            phases["between"] = entered - self.last_exit
        batch_log.record(len(batch), **phases)
        self.last_exit = time.perf_counter()
        return outputs


service = Service(__name__, name="batched-counting", route="/")
double = service.model(CountingDoubler, name="Doubler", route="/double")
app = service.application()
