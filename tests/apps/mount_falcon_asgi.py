"""utilserve mounted into a native falcon.asgi.App that keeps its resource, middleware and lifespan."""

from typing import Any

import falcon.asgi

from utilserve import Service

from .mount_api import MountedAPI

state = {"native_started": False}


class NativeResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"native": True, "native_started": state["native_started"]}


class StampMiddleware:
    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        state["native_started"] = True

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, ok: bool
    ) -> None:
        resp.set_header("X-Native-Middleware", "asgi")


native = falcon.asgi.App(middleware=[StampMiddleware()])
native.add_route("/native", NativeResource())

service = Service(__name__, name="mount-falcon-asgi", backend=native, api=MountedAPI, route="/api")
app = service.application()
