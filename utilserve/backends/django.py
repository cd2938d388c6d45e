"""Django (WSGI, or ASGI when ``asynchronous``): utilserve answers as Django views; the core routes.

* No Django project (settings not configured, no ``DJANGO_SETTINGS_MODULE``):
  ``service.application()`` configures minimal settings (no database, no
  middleware, no body limits of Django's own: utilserve answers 413) and
  sends every path to utilserve.
* In a project, serving the service's app: ``Service(...,
  backend=get_wsgi_application())`` (or ``get_asgi_application()``, or
  ``"django"`` with the project's settings in place). ``service.application()``
  puts utilserve's patterns (``<route>/...``, ``/livez``, ``/readyz``) at the
  front of ROOT_URLCONF's ``urlpatterns`` (at the end when the route is ``/``)
  and returns the project's handler; its views and middleware are untouched.
* In a project's URLconf: ``urlpatterns = [path("home/", home),
  *utilserve.backends.django.urlpatterns(service)]``, serving the project's
  own WSGI app. Under ASGI serve ``service.application()``: Django's ASGI
  handler has no lifespan events, and that app adds them for the hooks.

WSGI views run the startup hooks once per process before serving.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from importlib import import_module
from types import ModuleType
from typing import Any, Protocol

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import URLPattern, clear_url_caches, re_path
from django.views.decorators.csrf import csrf_exempt

from ..handler import Handler
from ..http import Request, Response
from . import asgi_path, wsgi_body, wsgi_path

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STANDALONE_URLCONF = ModuleType(f"{__name__}.urls", "The URLconf of a service served without a Django project.")
STANDALONE_URLCONF.urlpatterns = []  # type: ignore[attr-defined]  # a URLconf is any module with this name


def _copy_headers(native: HttpResponseBase, response: Response) -> list[tuple[str, str]]:
    """Set utilserve's headers on ``native``; return the repeated ones, which Django's header map cannot hold."""
    del native["Content-Type"]
    repeated: list[tuple[str, str]] = []
    for name, value in response.headers:
        if name in native:
            repeated.append((name, value))
        else:
            native[name] = value
    return repeated


class NativeResponse(HttpResponse):
    """An HttpResponse that keeps repeated header fields; Django's header map holds one value per name."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.body, status=response.status)
        self.repeated = _copy_headers(self, response)
        if "Content-Length" not in self:
            self["Content-Length"] = str(len(response.body))

    def items(self) -> list[tuple[str, str]]:
        return [*self.headers.items(), *self.repeated]


class NativeStreamingResponse(StreamingHttpResponse):
    """A streamed body, each chunk sent as it comes and no Content-Length: a sync iterator under WSGI, an async
    one under ASGI (Django 5 sends each as is). Django itself buffers none: its middleware that would (GZip,
    ConditionalGet, ETags) skips streaming responses, and standalone runs none."""

    def __init__(self, response: Response, chunks: Iterator[bytes] | AsyncIterator[bytes]) -> None:
        super().__init__(chunks, status=response.status)
        self.repeated = _copy_headers(self, response)

    def items(self) -> list[tuple[str, str]]:
        return [*self.headers.items(), *self.repeated]


def _native(response: Response) -> HttpResponseBase:
    if response.chunks is None:
        return NativeResponse(response)
    return NativeStreamingResponse(response, response.chunks)


class _WSGIRequest(WSGIRequest):
    """Keeps PATH_INFO as the server gave it: Django re-escapes bytes that are not UTF-8 (%FF)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.sent_path_info: str = environ.get("PATH_INFO", "")
        super().__init__(environ)


def _request(request: HttpRequest) -> Request:
    # request.read, never request.body: that one enforces DATA_UPLOAD_MAX_MEMORY_SIZE; the core owns limits.
    meta = request.META
    if isinstance(request, ASGIRequest):
        path, body = asgi_path(request.path_info, request.scope), request.read
    else:
        path, body = wsgi_path(request.path_info, getattr(request, "sent_path_info", "")), wsgi_body(meta, request.read)
    return Request(
        request.method or "GET",
        path,
        meta.get("QUERY_STRING", ""),
        request.headers,
        body,
        meta.get("REMOTE_ADDR"),
        native=request,
    )


def _view(handler: Handler, asynchronous: bool) -> Callable[..., Any]:
    async def async_view(request: HttpRequest) -> HttpResponseBase:
        return _native(await handler.ahandle(_request(request)))

    def sync_view(request: HttpRequest) -> HttpResponseBase:
        handler.start_once()
        return _native(handler.handle(_request(request)))

    view = csrf_exempt(async_view if asynchronous else sync_view)  # utilserve has no forms to protect
    view.utilserve_handler = handler
    return view


def _patterns(handler: Handler, asynchronous: bool, catch_all: bool = False) -> list[URLPattern]:
    view = _view(handler, asynchronous)
    prefix = handler.settings.route.strip("/")
    if catch_all or not prefix:
        return [re_path(r"", view)]
    health = "|".join(re.escape(path.strip("/")) for path in handler.root_paths)
    return [re_path(rf"^{re.escape(prefix)}(?:/|$)", view), re_path(rf"^(?:{health})/?$", view)]


class Compilable(Protocol):
    """What :func:`urlpatterns` needs of a ``Service``."""

    def setup(self) -> Handler: ...


def urlpatterns(service: Compilable) -> list[URLPattern]:
    """utilserve's patterns for a project's URLconf: async views when the service is ``asynchronous``."""
    handler = service.setup()
    return _patterns(handler, handler.settings.asynchronous)


class Lifespan:
    """Django's ASGI handler refuses lifespan scopes: answer them with the service hooks, pass the rest on."""

    def __init__(self, app: ASGIHandler, handler: Handler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            event = (await receive())["type"]
            try:
                await (self.handler.astart() if event == "lifespan.startup" else self.handler.astop())
            except Exception as error:  # noqa: BLE001 - the server reports it and stops
                await send({"type": f"{event}.failed", "message": f"{type(error).__name__}: {error}"})
                return
            await send({"type": f"{event}.complete"})
            if event == "lifespan.shutdown":
                return


def _configure_standalone(handler: Handler) -> None:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=STANDALONE_URLCONF,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_I18N=False,
        DATA_UPLOAD_MAX_MEMORY_SIZE=None,
        DATA_UPLOAD_MAX_NUMBER_FIELDS=None,
        DATA_UPLOAD_MAX_NUMBER_FILES=None,
        FILE_UPLOAD_MAX_MEMORY_SIZE=handler.settings.max_body_size,
    )


def _mount(handler: Handler, asynchronous: bool, catch_all: bool) -> None:
    urlconf = settings.ROOT_URLCONF
    module: Any = import_module(urlconf) if isinstance(urlconf, str) else urlconf
    existing = getattr(module, "urlpatterns", None)
    if existing is None:
        return  # the URLconf is importing this service right now: it lists urlpatterns(service) itself
    if any(getattr(getattr(p, "callback", None), "utilserve_handler", None) is handler for p in existing):
        return
    ours = _patterns(handler, asynchronous, catch_all)
    at_end = catch_all or not handler.settings.route.strip("/")
    module.urlpatterns = [*existing, *ours] if at_end else [*ours, *existing]
    clear_url_caches()


def application(handler: Handler, native: WSGIHandler | ASGIHandler | None) -> WSGIHandler | Lifespan:
    if native is not None and not isinstance(native, (WSGIHandler, ASGIHandler)):
        raise TypeError(
            f"a Django backend must be a WSGIHandler or ASGIHandler (get_wsgi_application() or "
            f"get_asgi_application()), got {type(native).__name__}"
        )
    standalone = native is None and not (settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE"))
    if standalone:
        _configure_standalone(handler)
    if native is None:
        native = get_asgi_application() if handler.settings.asynchronous else get_wsgi_application()
    asynchronous = isinstance(native, ASGIHandler)
    if not asynchronous and native.request_class is WSGIRequest:  # a project's own request class stays
        native.request_class = _WSGIRequest
    _mount(handler, asynchronous, catch_all=standalone)
    if asynchronous:
        return Lifespan(native, handler)
    handler.follow_process()
    return native


def run(app: WSGIHandler | Lifespan, handler: Handler, host: str, port: int) -> None:
    if isinstance(app, Lifespan):
        import uvicorn

        uvicorn.run(app, host=host, port=port)
        return
    from django.core.servers.basehttp import run as serve

    try:
        serve(host, port, app, ipv6=":" in host, threading=True)
    except KeyboardInterrupt:
        pass
