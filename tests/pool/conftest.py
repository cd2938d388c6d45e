"""Fixtures of the pool tests: models served by a pool kind, started and stopped for each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import values as prometheus_values

from utilserve import Model, ModelHandle
from utilserve.pool.process import ProcessPool
from utilserve.telemetry import metrics
from utilserve.telemetry.tally import tally

from ..support.processes import WAIT_S, Processes

POOL_KINDS = pytest.mark.parametrize("start_model", ["thread", "process"], indirect=True)
"""Runs a test that uses ``start_model`` once on each in-process pool kind."""


@pytest.fixture
def start_model(request: pytest.FixtureRequest, processes: Processes) -> Iterator[Callable[[type[Model]], ModelHandle]]:
    """Starts a model on the test's pool kind (its parameter; ``process`` when it has none) and waits until ready.

    Each handle is named after the test, so process pools of different tests never share a socket.
    """
    kind = getattr(request, "param", "process")
    handles: list[ModelHandle] = []

    def start(model: type[Model]) -> ModelHandle:
        handle = ModelHandle(model, name=f"{request.node.name[5:25]}-{len(handles)}", pool=kind)
        handles.append(handle)
        handle.start()
        assert handle.wait_ready(WAIT_S)
        if isinstance(pool := handle._pool, ProcessPool):
            processes.note(pool.supervisor_pid, *pool.worker_pids)
        return handle

    yield start
    for handle in handles:
        handle.stop(WAIT_S)


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A metrics directory of the test's own: this process and the pool processes it starts write there.

    Metric values bind to their directory's files when first made, so the
    test process drops the ones it made before, and again after the test.
    Counts not yet written go to the directory they were counted in first.
    """
    directory = tmp_path / "metrics"
    directory.mkdir()
    tally.write()
    monkeypatch.setenv(metrics.MULTIPROC_DIR, str(directory))
    monkeypatch.delenv(metrics.SWITCH, raising=False)
    _fresh_metric_values()
    yield directory
    tally.write()
    _fresh_metric_values()


def _fresh_metric_values() -> None:
    metrics.metrics.cache_clear()
    prometheus_values.ValueClass = prometheus_values.MultiProcessValue()
