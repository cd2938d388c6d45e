"""A service with middleware, whose access log also goes to plain and JSON files in $ACCESS_LOG_DIR."""

import logging
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from utilserve import API, Request, Response, Service, api
from utilserve.telemetry.logs import access_logger, formatter


class Item(BaseModel):
    name: str


class ItemsAPI(API):
    @api.get("/{item_id}")
    def get_item(self, item_id: int) -> dict:
        return {"id": item_id}

    @api.post(status=201)
    async def post(self, item: Item) -> Item:
        return item


class RootAPI(API):
    items: ItemsAPI

    @api.get
    def boom(self) -> dict:
        raise RuntimeError("boom")


service = Service(__name__, name="observed", api=RootAPI, route="/api", production=True)


@service.middleware
def stamp_route(request: Request, call_next: Any) -> Response:
    """A sync middleware: tells the route template it saw."""
    response = call_next(request)
    response.headers.append(("x-route", str(request.route)))
    return response


@service.middleware
async def block(request: Request, call_next: Any) -> Response:
    """An async middleware that answers at once when asked to."""
    if request.headers.get("x-block"):
        return Response({"blocked": True}, status=403)
    return await call_next(request)


for kind in ("plain", "json"):
    handler = logging.FileHandler(Path(os.environ["ACCESS_LOG_DIR"]) / f"access.{kind}")
    handler.setFormatter(formatter(kind))
    access_logger.addHandler(handler)

app = service.application()
