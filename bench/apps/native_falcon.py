"""Native Falcon hello-world: ``wsgi_app`` (sync responder) and ``asgi_app`` (async responder)."""

import falcon
import falcon.asgi


class Hello:
    def on_get(self, req, resp):
        resp.media = {"message": "hello world"}


class AsyncHello:
    async def on_get(self, req, resp):
        resp.media = {"message": "hello world"}


wsgi_app = falcon.App()
wsgi_app.add_route("/hello", Hello())

asgi_app = falcon.asgi.App()
asgi_app.add_route("/hello", AsyncHello())
