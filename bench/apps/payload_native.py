"""The native apps of ``bench.overhead --payloads``: validate the body into ``Payload`` with pydantic, answer a count.

``starlette_app`` for uvicorn, ``flask_app`` for gunicorn: each framework's
own fastest idiom, ``model_validate_json`` on the raw body.
"""

from flask import Flask, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.apps.payload_model import Payload


async def ingest(request: Request) -> JSONResponse:
    payload = Payload.model_validate_json(await request.body())
    return JSONResponse({"count": len(payload.entries)})


starlette_app = Starlette(routes=[Route("/ingest", ingest, methods=["POST"])])
flask_app = Flask("native_payload")


@flask_app.post("/ingest")
def flask_ingest() -> dict:
    payload = Payload.model_validate_json(request.get_data())
    return {"count": len(payload.entries)}
