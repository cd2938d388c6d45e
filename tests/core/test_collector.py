"""The collector as a serving process has it: what startup and a model's setup made is frozen, the young
generation wide; ``UTILSERVE_GC=0`` leaves Python's settings. Each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from utilserve.collector import YOUNG_THRESHOLD

SERVED = """
    import gc, json
    from pydantic import BaseModel
    from utilserve import Model, Service

    loaded = []

    class Echo(Model):
        class Input(BaseModel):
            x: int

        class Output(BaseModel):
            x: int

        def setup(self):
            loaded.append(id(self))

        def predict(self, batch):
            return [self.Output(x=item.x) for item in batch]

    service = Service(name="collector")
    echo = service.model(Echo)
    before = gc.get_threshold()[0]
    service.startup()
    echo.wait_ready(30)
    echo.predict({"x": 1})
    young = gc.get_threshold()[0]
    model_frozen = not any(id(thing) == loaded[0] for thing in gc.get_objects())
    service.shutdown()
    print(json.dumps({"before": before, "young": young, "frozen": gc.get_freeze_count(), "model_frozen": model_frozen}))
"""


def served(**env: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SERVED)],
        env={**os.environ, "UTILSERVE_ACCESS_LOG": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_a_started_service_freezes_its_model_and_widens_the_young_generation() -> None:
    seen = served()
    assert seen["before"] == 700  # Python's own, until the service starts
    assert seen["young"] == YOUNG_THRESHOLD
    assert seen["frozen"] > 10_000  # modules, the API tree, pydantic's schemas
    assert seen["model_frozen"] is True  # frozen after its setup, on the pool's thread


def test_utilserve_gc_0_leaves_the_collector_as_python_sets_it() -> None:
    seen = served(UTILSERVE_GC="0")
    assert (seen["young"], seen["frozen"], seen["model_frozen"]) == (700, 0, False)


def test_a_collector_turned_off_stays_off() -> None:
    code = "import gc; gc.set_threshold(0); import utilserve.collector as c; c.settle(); print(gc.get_threshold()[0])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "0"
