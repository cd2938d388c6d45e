"""The conformance API mounted at /api in a native WSGI app that keeps a route of its own, /native.

``MOUNT_INTO`` picks the native app: flask, django or falcon. wsgiref's validator checks these apps with the whole
conformance table (tests/http/test_wsgi_validator.py); tests/apps/mount_*.py are the mount tests' own apps.
"""

import os
from typing import Any

from utilserve import Service

from .conformance import RootAPI

urlpatterns: list[Any] = []
"""The Django project's URLconf (this module), where utilserve puts its routes in front of the project's."""


def flask_app() -> Any:
    import flask

    native = flask.Flask("native")

    @native.get("/native")
    def own() -> dict:
        return {"native": "flask"}

    return native


def django_app() -> Any:
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="tests-only",
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
    )

    def own(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"native": "django"})

    urlpatterns.append(path("native", own))
    return get_wsgi_application()


def falcon_app() -> Any:
    import falcon

    class Own:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"native": "falcon"}

    native = falcon.App()
    native.add_route("/native", Own())
    return native


NATIVE = {"flask": flask_app, "django": django_app, "falcon": falcon_app}

service = Service(
    __name__,
    name="conformance-mounted",
    backend=NATIVE[os.environ["MOUNT_INTO"]](),
    api=RootAPI,
    route="/api",
    production=True,
    max_body_size=64 * 1024,  # as tests.apps.conformance: the table's 413 case counts on it
)
app = service.application()
