"""An existing Sanic app with its own routes, middleware and listener, with utilserve mounted at /api."""

from typing import Annotated

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

from utilserve import API, Service, api

native = Sanic("mount_sanic")


@native.before_server_start
async def native_listener(app: Sanic) -> None:
    app.ctx.listener = "ran"


@native.get("/native")
async def own_route(request: Request) -> HTTPResponse:
    return json({"from": "sanic", "listener": request.app.ctx.listener})


@native.post("/native/echo")
async def own_body_route(request: Request) -> HTTPResponse:
    return json({"echo": request.json})


@native.on_response
async def add_header(request: Request, response: HTTPResponse) -> None:
    response.headers["X-Native"] = "yes"


class MountedAPI(API):
    @api.get
    def hello(self, name: str = "world") -> dict:
        return {"message": f"hello {name}"}

    @api.post
    async def total(self, values: Annotated[list[int], api.Body()]) -> dict:
        return {"total": sum(values)}


service = Service(__name__, name="mount-sanic", backend=native, api=MountedAPI, route="/api", max_body_size=1024)
app = service.application()
