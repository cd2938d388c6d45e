"""Flask (WSGI): one catch-all view; hooks run once per worker process before it serves."""

from __future__ import annotations

import flask

from ..handler import HEALTH_PATHS, Handler
from ..http import Request

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def application(handler: Handler, native: flask.Flask | None) -> flask.Flask:
    app = native if native is not None else flask.Flask(handler.service.name)
    response_class = app.response_class

    def view(path: str = "") -> flask.Response:
        native_request = flask.request
        environ = native_request.environ
        request = Request(
            native_request.method,
            native_request.path,
            environ.get("QUERY_STRING", ""),
            native_request.headers,
            native_request.stream.read,
            native_request.remote_addr,
            native=native_request,
        )
        response = handler.handle(request)
        native_response = response_class(response.body, status=response.status, headers=response.headers)
        if response.header("content-type") is None:
            del native_response.headers["Content-Type"]
        return native_response

    prefix = handler.route.rstrip("/") if native is not None else ""
    rules = [prefix or "/", prefix + "/<path:path>", *(HEALTH_PATHS if prefix else ())]
    for rule in rules:
        app.add_url_rule(
            rule,
            endpoint=f"utilserve:{rule}",
            view_func=view,
            methods=METHODS,
            provide_automatic_options=False,
            strict_slashes=False,
        )
    app.before_request(handler.start_once)
    return app


def run(app: flask.Flask, handler: Handler, host: str, port: int) -> None:
    app.run(host=host, port=port, threaded=True)
