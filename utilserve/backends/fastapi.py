"""FastAPI (ASGI): a Starlette subclass, so the Starlette adapter's route and lifespan serve it."""

from __future__ import annotations

import fastapi

from ..handler import Handler
from . import starlette
from .starlette import run

__all__ = ["application", "run"]


def application(handler: Handler, native: fastapi.FastAPI | None) -> fastapi.FastAPI:
    if native is not None:
        starlette.application(handler, native)
        return native
    # FastAPI's /docs, /redoc and /openapi.json would sit behind utilserve's catch-all and never
    # answer; utilserve serves its own document at <route>/openapi.json.
    return starlette.standalone(fastapi.FastAPI, handler, openapi_url=None, docs_url=None, redoc_url=None)
