"""utilserve mounted into a native falcon.App (WSGI) that keeps its own resource and middleware."""

import falcon

from utilserve import Service

from .mount_api import MountedAPI


class NativeResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"native": True}


class StampMiddleware:
    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object, ok: bool) -> None:
        resp.set_header("X-Native-Middleware", "wsgi")


native = falcon.App(middleware=[StampMiddleware()])
native.add_route("/native", NativeResource())

service = Service(__name__, name="mount-falcon-wsgi", backend=native, api=MountedAPI, route="/api")
app = service.application()
