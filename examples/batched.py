"""A batched toy model: each batch costs a fixed 10 ms, whatever its size (up to 32).

Its ceiling is 32 items / 10 ms = 3,200 items/s, which is what bench/pool
measures against.  Run with ``python examples/batched.py`` and
``curl -d '{"x": 2}' 127.0.0.1:8000/double``; debug the model alone with
``utilserve debug examples.batched:Doubler --input '{"x": 2}'``.
"""

import time

from pydantic import BaseModel

from utilserve import API, Model, Service, api


class Doubler(Model):
    """Doubles x; sleeps 10 ms per batch to stand in for a real model's cost."""

    class Input(BaseModel):
        x: float

    class Output(BaseModel):
        y: float

    max_batch_size = 32
    max_wait_ms = 5
    batch_cost_s = 0.010

    def predict(self, batch: list[Input]) -> list[Output]:
        time.sleep(self.batch_cost_s)
        return [self.Output(y=item.x * 2) for item in batch]


class RootAPI(API):
    @api.get
    async def quadruple(self, x: float) -> dict:
        """Calls the model from an endpoint: twice, in turn."""
        once = await double.apredict({"x": x})
        twice = await double.apredict({"x": once.y})
        return {"y": twice.y}


service = Service(__name__, name="batched", api=RootAPI, route="/")
double = service.model(Doubler, route="/double")
app = service.application()

if __name__ == "__main__":
    service.run()
