"""An existing Starlette app with its own route, middleware and lifespan, with utilserve mounted at /api."""

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from utilserve import Service

from .mount_api import MountedAPI

state = {"lifespan": "not run"}


async def own_route(request: Request) -> JSONResponse:
    return JSONResponse({"from": "starlette", "lifespan": state["lifespan"]})


class AddHeader(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):  # type: ignore[no-untyped-def]  # as a user's app has it
        response = await call_next(request)
        response.headers["X-Native"] = "yes"
        return response


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    state["lifespan"] = "ran"
    yield


native = Starlette(routes=[Route("/native", own_route)], middleware=[Middleware(AddHeader)], lifespan=lifespan)
service = Service(__name__, name="mount-starlette", backend=native, api=MountedAPI, route="/api")
app = service.application()
