"""A streaming model for every pool: ``Counting`` counts from 0, one output per step.

Each step records in ``$MODEL_LOG`` the tags of the items it holds, so a
test sees which items shared a step (continuous batching) and when one
left. An item runs on past ``n`` outputs for as long as its ``until`` file
does not exist: a test keeps it active, and knows it is, without timing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from utilserve import Model

from .log import events, record


class Count(BaseModel):
    tag: str
    n: int = 3
    until: str = ""
    fail_at: int = -1
    step_ms: int = 0


class Counted(BaseModel):
    tag: str
    i: int


class Miscounted(Exception):
    pass


@dataclass
class Counter:
    item: Count
    given: int = 0


class Counting(Model):
    """Gives ``n`` outputs ``0..n-1`` (more while ``until`` is missing); fails at output ``fail_at``."""

    Input, Output = Count, Counted
    max_batch_size = 4
    max_queue = 16
    timeout_s = 10
    errors = {Miscounted: 400}

    def start(self, item: Count) -> Counter:
        record(model="counting", started=item.tag)
        return Counter(item)

    def step(self, states: list[Counter]) -> list[Counted | Exception]:
        record(model="counting", step=[state.item.tag for state in states])
        time.sleep(max((state.item.step_ms for state in states), default=0) / 1000)
        outputs: list[Counted | Exception] = []
        for state in states:
            if state.given == state.item.fail_at:
                outputs.append(Miscounted(f"{state.item.tag} failed at {state.given}"))
            else:
                outputs.append(Counted(tag=state.item.tag, i=state.given))
            state.given += 1
        return outputs

    def done(self, state: Counter) -> bool:
        held = bool(state.item.until) and not os.path.exists(state.item.until)
        return state.given >= state.item.n and not held


class OneAtATime(Counting):
    """One active item per worker: another waits in the queue until it ends."""

    max_batch_size = 1


class Wide(Counting):
    """Room for many streams at once, all active in the same steps."""

    max_batch_size = 64
    max_queue = 64


class Impatient(Counting):
    """Drops a stream whose reader takes nothing for half a second."""

    timeout_s = 0.5


def steps(log: Path) -> list[list[str]]:
    """The tags of the items each step of ``Counting`` held, step by step."""
    return [event["step"] for event in events(log, model="counting") if "step" in event]


def started(log: Path) -> list[str]:
    """The tags of the items ``Counting`` started, in order."""
    return [event["started"] for event in events(log, model="counting") if "started" in event]
