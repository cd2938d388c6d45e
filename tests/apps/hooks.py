"""A service that records its startup and shutdown hooks, one line per call, in $HOOKS_LOG."""

import asyncio
import os

from utilserve import API, Service, api


def record(event: str) -> None:
    with open(os.environ["HOOKS_LOG"], "a") as log:
        log.write(f"{event} {os.getpid()}\n")


class RootAPI(API):
    @api.get
    def pid(self) -> dict:
        return {"pid": os.getpid()}


service = Service(__name__, name="hooks", api=RootAPI, route="/api")


@service.on_startup
def sync_startup() -> None:
    record("startup")


@service.on_startup
async def async_startup() -> None:
    await asyncio.sleep(0)
    record("astartup")


@service.on_shutdown
async def async_shutdown() -> None:
    record("ashutdown")


@service.on_shutdown
def sync_shutdown() -> None:
    record("shutdown")


app = service.application()
