"""The embedding model on Ray Serve, for ``bench.embed``: ``python -m bench.apps.embed_ray --port P``.

One replica with ``@serve.batch(32, 5 ms)``. It asks for both CPUs, as
Ray's docs advise for a replica whose library runs threads: Ray sets
``OMP_NUM_THREADS`` to the CPUs an actor asks for, so torch gets two.
"""

from ray import serve
from starlette.requests import Request

from bench.apps import embedding, ray_app


@serve.deployment(
    num_replicas=1, max_ongoing_requests=128, ray_actor_options={"num_cpus": 2}, logging_config=ray_app.LOGGING
)
class Embedder:
    def __init__(self) -> None:
        self.encoder = embedding.load()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def embed(self, texts: list[str]) -> list[list[float]]:
        return embedding.encode(self.encoder, texts).tolist()

    async def __call__(self, request: Request) -> dict:
        return {"embedding": await self.embed(str((await request.json())["text"]))}


if __name__ == "__main__":
    ray_app.main(Embedder.bind(), "embed", "/embed")  # type: ignore[attr-defined]  # bind() is added by @serve.deployment
