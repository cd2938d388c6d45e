"""A small service under /api for the docs page: a query endpoint and a JSON-body one, each with a summary."""

from pydantic import BaseModel

from utilserve import API, Service, api


class Item(BaseModel):
    name: str
    price: float


class ItemsAPI(API):
    @api.get("/{item_id}")
    def get_item(self, item_id: int) -> dict:
        """Fetch one item by id."""
        return {"id": item_id, "name": f"item {item_id}"}

    @api.post(status=201)
    async def post(self, item: Item) -> Item:
        """Create an item."""
        return item


class RootAPI(API):
    items: ItemsAPI

    @api.get
    def hello(self, name: str = "world") -> dict:
        """Say hello to someone."""
        return {"message": f"hello {name}"}


service = Service(__name__, name="documented", api=RootAPI, route="/api")
app = service.application()
