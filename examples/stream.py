"""A streaming toy model: each step costs a fixed 5 ms for up to 32 items, one token per item per step.

Its ceiling is 32 tokens / 5 ms = 6,400 tokens/s, which bench/stream
measures against. Run with ``python examples/stream.py``, then:

- ``curl -N -d '{"prompt": "hello", "tokens": 8}' 127.0.0.1:8000/generate``: the model's route, one
  Server-Sent Event per token (NDJSON with ``-H 'Accept: application/x-ndjson'``);
- ``curl -N '127.0.0.1:8000/words?prompt=hello'``: a generator endpoint that streams plain text;
- ``curl -N '127.0.0.1:8000/events?prompt=hello'``: an endpoint that answers its own event stream.
"""

import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from pydantic import BaseModel, Field

from utilserve import API, Event, EventStream, Model, Service, api


class Prompt(BaseModel):
    prompt: str = Field(max_length=1000)
    tokens: int = Field(default=16, ge=1, le=4096)


class Token(BaseModel):
    index: int
    text: str


@dataclass
class Generation:
    prompt: Prompt
    given: int = 0


class Generator(Model):
    """Echoes the prompt's words back, one token per step, then counts; 5 ms a step, whatever the batch."""

    Input, Output = Prompt, Token
    max_batch_size = 32
    step_cost_s = float(os.environ.get("STREAM_STEP_MS", "5")) / 1000

    def start(self, item: Prompt) -> Generation:
        return Generation(item)

    def step(self, states: list[Generation]) -> list[Token]:
        time.sleep(self.step_cost_s)
        tokens = []
        for state in states:
            words = state.prompt.prompt.split() or ["..."]
            tokens.append(Token(index=state.given, text=words[state.given % len(words)]))
            state.given += 1
        return tokens

    def done(self, state: Generation) -> bool:
        return state.given >= state.prompt.tokens


class RootAPI(API):
    @api.get
    def words(self, prompt: str, tokens: int = 16) -> Iterator[str]:
        """The model's tokens as plain text, one chunk each, from a sync generator."""
        for token in generate.stream({"prompt": prompt, "tokens": tokens}):
            yield token.text + " "

    @api.get
    async def events(self, prompt: str, tokens: int = 16) -> EventStream:
        """The model's tokens as events named ``token``, then an ``end`` event."""

        async def tokens_then_end() -> AsyncIterator[Event]:
            async for token in generate.astream({"prompt": prompt, "tokens": tokens}):
                yield Event(token, event="token", id=str(token.index))
            yield Event("", event="end")

        return EventStream(tokens_then_end())


service = Service(__name__, name="stream", api=RootAPI, route="/")
generate = service.model(Generator, route="/generate")
app = service.application()

if __name__ == "__main__":
    service.run()
