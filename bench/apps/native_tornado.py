"""Native Tornado hello-world (serve ``bench.apps.native_tornado:app`` with bench.apps.tornado_server)."""

import tornado.web


class Hello(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write({"message": "hello world"})


app = tornado.web.Application([(r"/hello", Hello)])
