"""The embedding model on LitServe, for ``bench.embed``: ``python -m bench.apps.embed_litserve --port P``.

One API server and one inference worker; batches of up to 32, 5 ms to fill,
as utilserve's model asks.
"""

import argparse

import litserve as ls

from bench.apps import embedding


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
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    api = EmbedAPI(max_batch_size=32, batch_timeout=0.005, api_path="/embed")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host="127.0.0.1", port=port, num_api_servers=1, log_level="warning", generate_client_file=False)
