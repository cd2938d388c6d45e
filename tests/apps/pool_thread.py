"""Models served over real HTTP by the pool tests; each records what it saw in $MODEL_LOG."""

import os
import time

from tests.support.models.log import Doubled, Number, record
from utilserve import API, HTTPError, Model, Service, api


class Batching(Model):
    """10 ms per batch; records every batch's size."""

    Input, Output = Number, Doubled
    max_batch_size = 8
    max_wait_ms = 20

    def predict(self, batch: list[Number]) -> list[Doubled]:
        record(model="batching", size=len(batch))
        time.sleep(0.010)
        return [Doubled(y=item.x * 2) for item in batch]


class Slow(Model):
    """One item at a time, 50 ms each, room for 8 in the queue."""

    Input, Output = Number, Doubled
    max_batch_size = 1
    max_queue = 8
    timeout_s = 30

    def predict(self, batch: list[Number]) -> list[Doubled]:
        record(model="slow", seen=[item.x for item in batch])
        time.sleep(0.050)
        return [Doubled(y=item.x * 2) for item in batch]


class TooBig(Exception):
    pass


class Picky(Model):
    """Fails negative items one by one, and a whole batch holding 999."""

    Input, Output = Number, Doubled
    max_batch_size = 16
    max_wait_ms = 50
    errors = {ValueError: 400, TooBig: (409, "999 is too big")}

    def predict(self, batch: list[Number]) -> list[Doubled | Exception]:
        if any(item.x == 999 for item in batch):
            raise TooBig()
        return [ValueError(f"{item.x} is negative") if item.x < 0 else Doubled(y=item.x * 2) for item in batch]


class SlowSetup(Model):
    """Takes $SETUP_SECONDS to load; records setup and teardown."""

    Input, Output = Number, Doubled

    def setup(self) -> None:
        time.sleep(float(os.environ.get("SETUP_SECONDS", "0")))
        record(model="slow_setup", event="setup")

    def predict(self, batch: list[Number]) -> list[Doubled]:
        return [Doubled(y=item.x * 2) for item in batch]

    def teardown(self) -> None:
        record(model="slow_setup", event="teardown")


class RootAPI(API):
    @api.get
    def slow(self, x: int, timeout: float = 30) -> dict:
        """A sync endpoint blocking on the model with its own deadline."""
        return {"y": slow.predict({"x": x}, timeout=timeout).y}

    @api.get
    async def picky(self, x: int) -> dict:
        """An async endpoint awaiting the model."""
        try:
            return {"y": (await picky.apredict(Number(x=x))).y}
        except HTTPError as error:
            raise HTTPError(error.status, f"picky: {error.message}") from None


service = Service(__name__, name="models", api=RootAPI, route="/api", production=True)
batching = service.model(Batching, route="/batching")
slow = service.model(Slow, route="/slow")
picky = service.model(Picky, route="/picky")
slow_setup = service.model(SlowSetup, route="/setup")
app = service.application()
