"""Flask (WSGI): one catch-all view; hooks run once per worker process before it serves."""

from __future__ import annotations

from collections.abc import Iterator

import flask
from werkzeug.routing import PathConverter

from ..handler import Handler
from ..http import Request, Response
from . import wsgi_body, wsgi_path


class AnyPath(PathConverter):
    """Werkzeug's path converter, newlines included (a ``%0A`` in the URL): its own stops at one, and Flask's
    HTML 404 answered in utilserve's place."""

    regex = "(?s:[^/].*?)"


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
            wsgi_path(native_request.path, environ.get("PATH_INFO", "")),
            environ.get("QUERY_STRING", ""),
            native_request.headers,
            wsgi_body(environ, lambda size: native_request.stream.read(size)),
            environ.get("REMOTE_ADDR"),
            native=native_request,
        )
        return _native(handler.handle(request), NativeResponse)

    prefix = handler.settings.route.rstrip("/") if native is not None else ""
    app.url_map.converters["utilserve_path"] = AnyPath
    rules = [prefix or "/", prefix + "/<utilserve_path:path>", *(handler.root_paths if prefix else ())]
    for rule in rules:
        # A werkzeug Rule lists no methods: every one, QUERY and PROPFIND too, reaches the core, which answers 405
        # with a true Allow. Flask's add_url_rule would list some, and the app's own 405 would answer the rest.
        endpoint = f"utilserve:{rule}"
        app.url_map.add(app.url_rule_class(rule, endpoint=endpoint, strict_slashes=False))
        app.view_functions[endpoint] = view
    if native is not None:
        app.before_request(handler.start_once)
    handler.follow_process()
    return app


def _native(response: Response, response_class: type[flask.Response]) -> flask.Response:
    headers = response.headers
    body: bytes | Iterator[bytes] = response.body
    if response.chunks is not None:
        assert isinstance(response.chunks, Iterator)  # the handler's sync path streams sync chunks only
        body = response.chunks
    if len(headers) == 1 and headers[0][0] == "content-type":
        return response_class(body, response.status, content_type=headers[0][1])
    return response_class(body, response.status, headers)


def run(app: flask.Flask, handler: Handler, host: str, port: int) -> None:
    app.run(host=host, port=port, threaded=True)
