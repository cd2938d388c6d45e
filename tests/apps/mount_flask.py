"""An existing Flask app with its own route, hook and header, with utilserve mounted at /api."""

import flask

from utilserve import Service

from .mount_api import MountedAPI

native = flask.Flask("existing")


@native.get("/native")
def own_route() -> dict:
    return {"from": "flask", "hook": flask.g.get("hook")}


@native.before_request
def own_hook() -> None:
    flask.g.hook = "ran"


@native.after_request
def own_header(response: flask.Response) -> flask.Response:
    response.headers["X-Native"] = "yes"
    return response


service = Service(__name__, name="mount-flask", backend=native, api=MountedAPI, route="/api")
app = service.application()
