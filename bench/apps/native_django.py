"""Native Django hello-world in one module, no middleware: ``wsgi_app`` (gunicorn) or ``asgi_app`` (uvicorn)."""

import os

import django
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

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


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"message": "hello world"})


async def async_hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"message": "hello world"})


urlpatterns = [path("hello", hello if os.environ.get("UTILSERVE_ASYNCHRONOUS") == "0" else async_hello)]
wsgi_app = get_wsgi_application()
asgi_app = get_asgi_application()
