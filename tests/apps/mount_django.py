"""An existing Django project (settings, a view, a middleware) that gets utilserve's routes under /api.

``MOUNT_DJANGO=backend`` (default): ``Service(backend=<the project's handler>)`` and
``service.application()`` add the routes; ``MOUNT_DJANGO=include``: the URLconf lists
``urlpatterns(service)`` and the project's own ``get_wsgi_application()`` is served.
``UTILSERVE_ASYNCHRONOUS=1`` picks the project's ASGI handler.
"""

import os
from collections.abc import Callable
from typing import Annotated

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from utilserve import API, Service, api
from utilserve.backends.django import urlpatterns as utilserve_urls

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="tests-only",
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[
        f"{__name__}.stamp",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
)


def stamp(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """The project's own middleware: marks every response it passes."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response["X-Project"] = "stamped"
        return response

    return middleware


def home(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"project": True})


class RootAPI(API):
    @api.get
    def hello(self, name: str = "world") -> dict:
        return {"message": f"hello {name}"}

    @api.post
    async def echo(self, value: Annotated[int, api.Body("value")]) -> dict:
        return {"value": value}


asynchronous = os.environ.get("UTILSERVE_ASYNCHRONOUS") == "1"
if os.environ.get("MOUNT_DJANGO", "backend") == "include":
    from django.core.wsgi import get_wsgi_application

    service = Service(__name__, name="included", backend="django", api=RootAPI, route="/api")
    urlpatterns = [path("home", home), *utilserve_urls(service)]
    app = get_wsgi_application()
else:
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application

    urlpatterns = [path("home", home)]
    project = get_asgi_application() if asynchronous else get_wsgi_application()
    service = Service(__name__, name="mounted", backend=project, api=RootAPI, route="/api")
    app = service.application()
