"""The toy model of examples/batched.py on LitServe, for ``bench.pool``.

    python -m bench.apps.pool_litserve --port P

One API server and one inference worker; batches of up to 32 items, 10 ms each.
"""

import time

import litserve as ls

from bench.apps import litserve_app
from bench.diagnostics import batch_log

BATCH_COST_S = 0.010


class DoublerAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: dict) -> float:
        return float(request["x"])

    def predict(self, xs: list[float]) -> list[float]:
        batch_log.record(len(xs))
        time.sleep(BATCH_COST_S)
        return [x * 2 for x in xs]

    def encode_response(self, output: float) -> dict:
        return {"y": output}


if __name__ == "__main__":
    litserve_app.serve(DoublerAPI(max_batch_size=32, batch_timeout=0.005, api_path="/double"), litserve_app.port())
