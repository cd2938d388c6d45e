"""The thread pool's models served over HTTP: each at a route of its own, two behind endpoints too."""

from utilserve import API, HTTPError, Service, api

from ..support.models.thread import Batching, Number, Picky, Slow, SlowSetup


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
