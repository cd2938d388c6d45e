"""A flask service whose model holds ``BENCH_MODEL_MB`` MiB, for ``bench.shared_memory``; 0 is the baseline.

``GET /pid`` answers which web worker served it and which process holds the
model behind it, so the bench knows every web worker has a model loaded.
"""

import os

from pydantic import BaseModel

from utilserve import API, Model, Service, api

MIB = 2**20


class Ballast(Model):
    """Holds a block of memory the size of a model's weights."""

    class Input(BaseModel):
        pass

    class Output(BaseModel):
        pid: int
        mib: float

    def setup(self) -> None:
        # Written, not only allocated: only resident pages count in RSS and PSS.
        self.weights = bytearray(b"\x01") * (int(os.environ.get("BENCH_MODEL_MB", "200")) * MIB)

    def predict(self, batch: list[Input]) -> list[Output]:
        return [self.Output(pid=os.getpid(), mib=len(self.weights) / MIB) for _ in batch]


class RootAPI(API):
    @api.get
    def pid(self) -> dict:
        answer = ballast.predict({})
        return {"web": os.getpid(), "model": answer.pid, "mib": answer.mib}


service = Service(__name__, name="shared-memory", backend="flask", api=RootAPI, route="/", production=True)
ballast = service.model(Ballast)
app = service.application()
