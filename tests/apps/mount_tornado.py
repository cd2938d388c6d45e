"""An existing Tornado app with its own handler, prepare() hook and output transform, with utilserve at /api."""

from __future__ import annotations

import os
from typing import Annotated

import tornado.escape
import tornado.httputil
import tornado.web

from utilserve import API, Service, api


class NativeHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_header("X-Native-Prepare", "yes")

    def get(self) -> None:
        self.write({"from": "tornado"})

    def post(self) -> None:
        self.write({"echo": tornado.escape.json_decode(self.request.body)})


class NativeTransform(tornado.web.OutputTransform):
    """App-wide, like middleware: it sees every response the app sends, utilserve's included."""

    def transform_first_chunk(
        self, status_code: int, headers: tornado.httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        headers["X-Native"] = "yes"
        return status_code, headers, chunk


native = tornado.web.Application([(r"/native", NativeHandler)])
native.add_transform(NativeTransform)


class MountedAPI(API):
    @api.get
    def hello(self, name: str = "world") -> dict:
        return {"message": f"hello {name}"}

    @api.post
    async def total(self, values: Annotated[list[int], api.Body("values")]) -> dict:
        return {"total": sum(values)}


service = Service(__name__, name="mount-tornado", backend=native, api=MountedAPI, route="/api", max_body_size=1024)


@service.on_shutdown
def record_shutdown() -> None:
    with open(os.environ["MOUNT_TORNADO_LOG"], "a") as log:
        log.write(f"shutdown {os.getpid()}\n")


app = service.application()
