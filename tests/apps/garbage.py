"""Every kind of request path in one service, for the reference-cycle census; the backend from UTILSERVE_BACKEND."""

import asyncio

from pydantic import BaseModel

from utilserve import API, Model, Service, api


class Doubler(Model):
    class Input(BaseModel):
        x: float

    class Output(BaseModel):
        y: float

    max_wait_ms = 1

    def predict(self, batch: list[Input]) -> list[Output]:
        return [self.Output(y=item.x * 2) for item in batch]


class Item(BaseModel):
    name: str
    size: int


class RootAPI(API):
    @api.get
    def hello(self) -> dict:
        return {"message": "hello world"}

    @api.get
    async def ahello(self, n: int = 1) -> dict:
        return {"n": n}

    @api.post
    def ingest(self, item: Item) -> dict:
        return {"size": item.size}

    @api.get
    async def slow(self) -> dict:
        """Answered after the client's leaving begins to be watched for."""
        await asyncio.sleep(0.05)
        return {"slow": True}

    @api.get
    def boom(self) -> dict:
        raise RuntimeError("an endpoint's bug")

    @api.post
    async def adouble(self, x: float) -> dict:
        return {"y": (await doubler.apredict({"x": x})).y}

    @api.post
    def double(self, x: float) -> dict:
        return {"y": doubler.predict({"x": x}).y}


service = Service(name="garbage", api=RootAPI)
doubler = service.model(Doubler)
app = service.application()
