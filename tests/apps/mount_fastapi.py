"""utilserve mounted into a native FastAPI app that keeps its own route, middleware and lifespan."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from utilserve import Service

from .mount_api import MountedAPI

events: list[str] = []


@asynccontextmanager
async def native_lifespan(app: FastAPI) -> AsyncIterator[None]:
    events.append("native-startup")
    yield


native = FastAPI(lifespan=native_lifespan)


@native.middleware("http")
async def stamp(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers["X-Native-Middleware"] = "fastapi"
    return response


@native.get("/native/{item_id}")
async def native_item(item_id: int) -> dict:
    return {"native": item_id, "events": events}


service = Service(__name__, name="mount-fastapi", backend=native, api=MountedAPI, route="/api")


@service.on_startup
def utilserve_startup() -> None:
    events.append("utilserve-startup")


app = service.application()
