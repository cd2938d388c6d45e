"""Native Django hello-world in one module, no middleware.

``bench.apps.native_django:wsgi_app`` (gunicorn, sync view) or
``bench.apps.native_django:asgi_app`` (uvicorn, async view); the view flavour
follows ``BENCH_ENDPOINT`` (``sync`` / ``async``, default ``sync``).
"""

from __future__ import annotations

import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import path

from . import endpoint_kind

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
    APPEND_SLASH=False,
    LOGGING_CONFIG=None,
)
django.setup()

if endpoint_kind("sync") == "async":

    async def hello(request):
        return JsonResponse({"message": "hello world"})

else:

    def hello(request):  # type: ignore[misc]
        return JsonResponse({"message": "hello world"})


urlpatterns = [path("hello", hello)]


def __getattr__(name: str):  # build only the handler that is asked for
    if name == "wsgi_app":
        from django.core.wsgi import get_wsgi_application

        return get_wsgi_application()
    if name == "asgi_app":
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    raise AttributeError(name)
