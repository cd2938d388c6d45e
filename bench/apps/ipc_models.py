"""Models for ``bench.pool_ipc``, importable by name so that the pool's model workers can load them."""

from pydantic import BaseModel

from utilserve import Model


class Item(BaseModel):
    x: int


class Echo(Model):
    """Answers each item with itself: the least a model can cost."""

    Input, Output = Item, Item
    max_batch_size = 64
    max_wait_ms = 20

    def predict(self, batch: list[Item]) -> list[Item]:
        return batch


class Blob(BaseModel):
    data: bytes


class Measure(Model):
    """Answers a blob with its size: what a large input costs on the way in."""

    Input, Output = Blob, Item
    max_batch_size = 4
    max_wait_ms = 1

    def predict(self, batch: list[Blob]) -> list[Item]:
        return [Item(x=len(blob.data)) for blob in batch]
