"""The streaming toy model of examples/stream.py on LitServe, for ``bench.stream``.

    python -m bench.apps.stream_litserve --port P [--loop continuous|batched]

``POST /generate`` with ``{"prompt": ..., "tokens": N}`` streams N events
``data: {"index": i, "text": ...}``; each step costs 5 ms for up to 32 items.
``continuous`` (the default) uses LitServe's ``ContinuousBatchingLoop``: items
join and leave the running batch at every step. ``batched`` uses its default
streaming loop with ``max_batch_size=32, batch_timeout=0.005``: a batch runs
until its last item is done, and new items wait for the next batch.
"""

import argparse
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import litserve as ls
from litserve.loops.continuous_batching_loop import ContinuousBatchingLoop, Output
from litserve.utils import LitAPIStatus

from bench.apps import litserve_app

STEP_COST_S = float(os.environ.get("STREAM_STEP_MS", "5")) / 1000
MAX_BATCH = 32


def token(prompt: str, index: int) -> dict[str, Any]:
    words = prompt.split() or ["..."]
    return {"index": index, "text": words[index % len(words)]}


def event(output: dict[str, Any] | None) -> str:
    """One Server-Sent Event per output, as utilserve sends them; nothing for the end of a stream."""
    return "" if output is None else f"data: {json.dumps(output, separators=(',', ':'))}\n\n"


class ContinuousAPI(ls.LitAPI):
    """The hooks of LitServe's continuous batching loop: add_request, has_capacity, has_active_requests, step."""

    def setup(self, device: str) -> None:
        self.active: dict[str, list[Any]] = {}  # uid -> [prompt, given, tokens]

    def add_request(self, uid: str, request: Any) -> None:
        self.active[uid] = [str(request["prompt"]), 0, int(request.get("tokens", 16))]

    def has_capacity(self) -> bool:
        return len(self.active) < MAX_BATCH

    def has_active_requests(self) -> bool:
        return bool(self.active)

    def step(self, prev_outputs: list[Output] | None) -> list[Output]:
        time.sleep(STEP_COST_S)
        outputs = []
        for uid, state in list(self.active.items()):
            outputs.append(Output(uid, token(state[0], state[1]), LitAPIStatus.OK))
            state[1] += 1
            if state[1] >= state[2]:
                outputs.append(Output(uid, None, LitAPIStatus.FINISH_STREAMING))
                del self.active[uid]
        return outputs

    def predict(self, x: Any) -> Any:  # not called by the continuous loop
        raise NotImplementedError

    def encode_response(self, output: dict[str, Any] | None) -> str:
        return event(output)


class BatchedAPI(ls.LitAPI):
    """LitServe's batched streaming: predict yields one list of outputs per step for the whole batch."""

    def setup(self, device: str) -> None:
        pass

    def decode_request(self, request: dict[str, Any]) -> tuple[str, int]:
        return str(request["prompt"]), int(request.get("tokens", 16))

    def predict(self, inputs: list[tuple[str, int]]) -> Iterator[list[dict[str, Any] | None]]:
        for index in range(max(tokens for _, tokens in inputs)):
            time.sleep(STEP_COST_S)
            yield [token(prompt, index) if index < tokens else None for prompt, tokens in inputs]

    def encode_response(self, outputs: Iterator[list[dict[str, Any] | None]]) -> Iterator[list[str]]:
        for step in outputs:
            yield [event(output) for output in step]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["continuous", "batched"], default="continuous")
    args = parser.parse_args()
    if args.loop == "continuous":
        api: ls.LitAPI = ContinuousAPI(
            max_batch_size=MAX_BATCH, stream=True, loop=ContinuousBatchingLoop(), api_path="/generate"
        )
    else:
        api = BatchedAPI(max_batch_size=MAX_BATCH, batch_timeout=0.005, stream=True, api_path="/generate")
    litserve_app.serve(api, args.port, timeout=60)
