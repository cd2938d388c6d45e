"""A flask service whose model holds ``BENCH_MODEL_MB`` MiB (default 200), for bench/shared_memory.py.

    UTILSERVE_POOL=process BENCH_MODEL_MB=200 gunicorn -c deploy/gunicorn.conf.py bench.apps.shared_memory:app

``setup()`` allocates the block and writes every page of it: a fresh
allocation is zero-filled and not resident until written, and only resident
pages count in RSS and PSS. ``BENCH_MODEL_MB=0`` serves the same app with an
empty model, the baseline. ``GET /pid`` asks the model and answers
``{"web": <pid of the web worker>, "model": <pid holding the model>, "mib":
<its size>}``, so the bench knows which web worker answered and that a loaded
model stood behind it; ``POST /ballast`` is the model's own route. The pool
kind comes from ``UTILSERVE_POOL`` (the deploy file defaults it to process).
"""

from __future__ import annotations

import os

from pydantic import BaseModel

from utilserve import API, Model, Service, api

MIB = 2**20


class Ballast(Model):
    """Holds a written block of memory the size of a model's weights; predicting only reports it."""

    class Input(BaseModel):
        pass

    class Output(BaseModel):
        pid: int
        mib: float

    def setup(self) -> None:
        size = int(os.environ.get("BENCH_MODEL_MB", "200")) * MIB
        self.weights = bytearray(b"\x01") * size  # repeating a non-zero byte writes every page

    def predict(self, batch: list[Input]) -> list[Output]:
        return [self.Output(pid=os.getpid(), mib=len(self.weights) / MIB) for _ in batch]


class RootAPI(API):
    @api.get
    def pid(self) -> dict:
        """Which web worker answered, and which process holds the model it reached."""
        answer = ballast.predict({})
        return {"web": os.getpid(), "model": answer.pid, "mib": answer.mib}


service = Service(__name__, name="shared-memory", backend="flask", api=RootAPI, route="/", production=True)
ballast = service.model(Ballast, route="/ballast")
app = service.application()
