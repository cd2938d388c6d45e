"""The embedding model on LitServe, for ``bench.embed``: ``python -m bench.apps.embed_litserve --port P``.

One API server and one inference worker; batches of up to 32, 5 ms to fill,
as utilserve's model asks.
"""

import litserve as ls

from bench.apps import embedding, litserve_app


class EmbedAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.encoder = embedding.load()

    def decode_request(self, request: dict) -> str:
        return str(request["text"])

    def predict(self, texts: list[str]) -> list[list[float]]:
        return embedding.encode(self.encoder, texts).tolist()

    def encode_response(self, output: list[float]) -> dict:
        return {"embedding": output}


if __name__ == "__main__":
    litserve_app.serve(EmbedAPI(max_batch_size=32, batch_timeout=0.005, api_path="/embed"), litserve_app.port())
