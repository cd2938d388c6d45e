"""A service that lets one origin call it from a browser: $CORS_ORIGIN, else https://app.example.com."""

import os

from pydantic import BaseModel

from utilserve import API, CORS, Service, api

ORIGIN = os.environ.get("CORS_ORIGIN", "https://app.example.com")


class Item(BaseModel):
    name: str


class ItemsAPI(API):
    @api.get("/{item_id}")
    def get_item(self, item_id: int) -> dict:
        return {"id": item_id}

    @api.put("/{item_id}")
    async def put_item(self, item_id: int, item: Item) -> dict:
        return {"id": item_id, "name": item.name}


class RootAPI(API):
    items: ItemsAPI

    @api.get
    def boom(self) -> dict:
        raise RuntimeError("boom")


cors = CORS(
    origins=[ORIGIN],
    methods=["GET", "POST", "PUT"],
    headers=["X-Token"],
    expose_headers=["X-Request-ID"],
    credentials=True,
    max_age=300,
)
service = Service(__name__, name="cors", api=RootAPI, route="/api", production=True, cors=cors)
app = service.application()
