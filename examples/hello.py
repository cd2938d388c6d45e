"""The hello-world service: a query param, a nested API with a path param, a JSON echo, an error.

Run it with ``python examples/hello.py`` or ``utilserve run examples.hello:service``.
"""

from pydantic import BaseModel

from utilserve import API, HTTPError, Service, api


class Item(BaseModel):
    name: str
    price: float


class ItemsAPI(API):
    @api.get("/{item_id}")
    def get_item(self, item_id: int) -> dict:
        """Fetch one item by id."""
        if item_id == 0:
            raise HTTPError(404, "item 0 does not exist")
        return {"id": item_id}


class RootAPI(API):
    items: ItemsAPI

    @api.get
    def hello(self, name: str = "world") -> dict:
        """Greet someone."""
        return {"message": f"hello {name}"}

    @api.post
    async def echo(self, item: Item) -> Item:
        """Send the item back."""
        return item


service = Service(__name__, name="hello", backend="starlette", api=RootAPI, route="/api")
app = service.application()

if __name__ == "__main__":
    service.run()
