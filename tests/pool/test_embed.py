"""The embedding example loads the real all-MiniLM-L6-v2 model and answers real requests."""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx

from ..support.cells import cell_named
from ..support.pool_over_http import wait_ready
from ..support.servers import Server, serve


def test_embedding_service_answers_with_a_384_number_vector(running: Callable[[Server], Server]) -> None:
    server = running(serve(cell_named("starlette@uvicorn"), "examples.embed:app"))
    wait_ready(server, timeout=120)
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly tax filing deadlines."]
    vectors = [httpx.post(server.url + "/embed", json={"text": t}, timeout=60).json()["embedding"] for t in texts]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    similar = sum(a * b for a, b in zip(vectors[0], vectors[1], strict=True))
    unrelated = sum(a * b for a, b in zip(vectors[0], vectors[2], strict=True))
    assert similar > unrelated + 0.3, (similar, unrelated)
