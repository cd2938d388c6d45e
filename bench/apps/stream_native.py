"""The streaming toy model's cost with no model server: a Starlette app that streams each request on its own.

    uvicorn bench.apps.stream_native:app

``POST /generate`` takes ``{"prompt": ..., "tokens": N}`` and answers N
events, each after its own 5 ms step on a thread (``asyncio.to_thread``,
so the event loop stays free), with no batching: what a hand-written
service does. At concurrency 1 it is the floor of one step plus one
thread hop and HTTP on the machine, for utilserve's row to be read
against; under load the steps of all requests compete for the default
thread pool.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from examples.stream import Generator, Prompt

STEP_S = Generator.step_cost_s


async def generate(request: Request) -> StreamingResponse:
    prompt = Prompt.model_validate_json(await request.body())
    words = prompt.prompt.split() or ["..."]

    async def events() -> AsyncIterator[str]:
        for index in range(prompt.tokens):
            await asyncio.to_thread(time.sleep, STEP_S)
            token = {"index": index, "text": words[index % len(words)]}
            yield f"data: {json.dumps(token, separators=(',', ':'))}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


app = Starlette(routes=[Route("/generate", generate, methods=["POST"])])
