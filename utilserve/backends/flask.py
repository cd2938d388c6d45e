"""Flask (WSGI): one catch-all view; hooks run once per worker process before it serves."""

from __future__ import annotations

import flask
from werkzeug.exceptions import MethodNotAllowed

from ..api.builtin import HEALTH_PATHS
from ..handler import Handler
from ..http import Request, Response

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def application(handler: Handler, native: flask.Flask | None) -> flask.Flask:
    app = native if native is not None else flask.Flask(handler.settings.name)

    class NativeResponse(app.response_class):  # type: ignore[name-defined, misc]  # the app's own class, at runtime
        """The app's own response class, minus Werkzeug's default text/html for typeless bodies."""

        default_mimetype = None

    def view(path: str = "") -> flask.Response:
        handler.start_once()
        native_request = flask.request._get_current_object()  # type: ignore[attr-defined]  # Flask's documented way
        environ = native_request.environ
        request = Request(
            native_request.method,
            native_request.path,
            environ.get("QUERY_STRING", ""),
            native_request.headers,
            lambda size: native_request.stream.read(size),
            environ.get("REMOTE_ADDR"),
            native=native_request,
        )
        return _native(handler.handle(request), NativeResponse)

    prefix = handler.settings.route.rstrip("/") if native is not None else ""
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
    if native is not None:
        app.before_request(handler.start_once)
    else:

        def other_method(error: MethodNotAllowed) -> flask.Response:
            """Methods no rule lists (QUERY, PROPFIND...) still get utilserve's answer, with a true ``Allow``."""
            return view()

        app.register_error_handler(MethodNotAllowed, other_method)
    return app


def _native(response: Response, response_class: type[flask.Response]) -> flask.Response:
    headers = response.headers
    if len(headers) == 1 and headers[0][0] == "content-type":
        return response_class(response.body, response.status, content_type=headers[0][1])
    return response_class(response.body, response.status, headers)


def run(app: flask.Flask, handler: Handler, host: str, port: int) -> None:
    app.run(host=host, port=port, threaded=True)
