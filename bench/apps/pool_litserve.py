"""The toy model of examples/batched.py on LitServe, for bench/pool.py.

    python -m bench.apps.pool_litserve --port P

``POST /double`` with ``{"x": 2}`` answers ``{"y": 4.0}``. One inference
worker on the CPU (``workers_per_device=1``) and one API server process;
batches of up to 32 items, waiting at most 5 ms (``batch_timeout=0.005``),
each batch costing 10 ms of ``time.sleep`` whatever its size, like
``examples.batched.Doubler``.
"""

from __future__ import annotations

import argparse
import os
import time

import litserve as ls

from bench.diagnostics import batch_log

BATCH_COST_S = 0.010


class DoublerAPI(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        return float(request["x"])

    def predict(self, xs):
        # Batched: ``xs`` is the list made by the default ``batch`` (no tensors, so a list).
        batch_log.record(len(xs))  # a counter; written to a file only under --batch-stats
        time.sleep(BATCH_COST_S)
        return [x * 2 for x in xs]

    def encode_response(self, output):
        return {"y": float(output)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("LITSERVE_DISABLE_TELEMETRY", "1")
    api = DoublerAPI(max_batch_size=32, batch_timeout=0.005, api_path="/double")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host=args.host, port=args.port, num_api_servers=1, log_level="warning",
               generate_client_file=False)


if __name__ == "__main__":
    main()
