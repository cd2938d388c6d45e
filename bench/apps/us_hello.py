"""The utilserve hello-world, ``GET /hello`` -> ``{"message": "hello world"}``, on ``UTILSERVE_BACKEND``."""

import os

from utilserve import API, Service, api


class SyncRoot(API):
    @api.get
    def hello(self) -> dict:
        return {"message": "hello world"}


class AsyncRoot(API):
    @api.get
    async def hello(self) -> dict:
        return {"message": "hello world"}


asynchronous = os.environ.get("UTILSERVE_ASYNCHRONOUS", "1") != "0"  # as bench.overhead sets it for WSGI servers
service = Service(name="bench", api=AsyncRoot if asynchronous else SyncRoot, route="/")
app = service.application()
