"""Apps the benchmarks serve.  Adapter overhead: one utilserve hello-world, one native hello-world per framework.

Every app answers ``GET /hello`` with ``{"message": "hello world"}``.  Which
endpoint flavour to use (``def`` or ``async def``) comes from
``BENCH_ENDPOINT`` (``sync`` / ``async``), set by ``bench.overhead`` so that
the native and the utilserve app of one row always match.
"""

from __future__ import annotations

import os

MESSAGE = {"message": "hello world"}


def endpoint_kind(default: str) -> str:
    kind = os.environ.get("BENCH_ENDPOINT", "").strip().lower() or default
    if kind not in ("sync", "async"):
        raise ValueError(f"BENCH_ENDPOINT must be 'sync' or 'async', got {kind!r}")
    return kind
