"""A streaming model on the process pool over HTTP: the web workers of gunicorn and uWSGI stream from one worker.

The app (tests/apps/pool_process_streaming.py) returns ``handle.stream(...)``,
which goes out as NDJSON. An item runs on while its ``until`` file is
missing, so a test holds one stream open without timing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from ..support.models.streaming import started, steps
from ..support.pool_over_http import wait_ready
from ..support.processes import WAIT_S
from ..support.servers import Server
from .test_process_http import gunicorn, start, uwsgi

APP = "tests.apps.pool_process_streaming:app"
SERVERS = {"flask@gunicorn": partial(gunicorn, app=APP), "flask@uwsgi": partial(uwsgi, app=APP)}


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, model_log: Path) -> Iterator[Server]:
    """The app under each server, its models' log in ``model_log``."""
    started = start(SERVERS[request.param], model_log)
    try:
        wait_ready(started, in_a_row=4)
        yield started
    finally:
        started.stop()


def test_a_request_that_starts_while_another_streams_is_answered_first_and_shares_its_steps(
    server: Server, model_log: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release-a"
    params = {"tag": "a", "n": 1, "until": str(release)}
    with (
        httpx.Client(base_url=server.url, timeout=WAIT_S) as client,
        client.stream("GET", "/api/count", params=params) as first,
    ):
        lines = first.iter_lines()
        assert json.loads(next(lines)) == {"tag": "a", "i": 0}
        second = httpx.get(server.url + "/api/count", params={"tag": "b", "n": 3}, timeout=WAIT_S)
        assert second.headers["content-type"].startswith("application/x-ndjson"), second.headers
        assert [json.loads(line) for line in second.text.splitlines()] == [{"tag": "b", "i": i} for i in range(3)], (
            "b streamed to its end while a was held"
        )
        release.touch()
        rest = [json.loads(line) for line in lines if line]
    assert [output["i"] for output in rest] == list(range(1, len(rest) + 1))
    assert {output["tag"] for output in rest} == {"a"}
    assert ["a", "b"] in [sorted(step) for step in steps(model_log)]


def test_an_error_stays_with_its_item_and_a_client_that_leaves_takes_its_item_out_of_the_steps(
    server: Server, model_log: Path, tmp_path: Path
) -> None:
    """A step without c does not show that c left: a paused item (its reader's buffer full) skips steps too.

    What shows it: with ``a`` still held, three more items start, which the
    model's four places allow only once c has given up its own; from then on
    no step holds c.
    """
    release = tmp_path / "release"
    until = {"n": 1, "until": str(release)}
    with (
        httpx.Client(base_url=server.url, timeout=WAIT_S) as client,
        client.stream("GET", "/api/count", params={"tag": "a", **until}) as held,
    ):
        lines = held.iter_lines()
        assert json.loads(next(lines)) == {"tag": "a", "i": 0}
        failing = client.post("/api/counting", json={"tag": "b", "n": 3, "fail_at": 1})
        assert failing.text.splitlines() == [
            'data: {"tag":"b","i":0}',
            "",
            "event: error",
            'data: {"error":{"status":400,"message":"model Counting: Miscounted: b failed at 1"}}',
            "",
        ]
        with client.stream("GET", "/api/count", params={"tag": "c", "n": 100000}) as leaving:
            assert json.loads(next(leaving.iter_lines())) == {"tag": "c", "i": 0}
        with contextlib.ExitStack() as fillers:
            for tag in "def":
                filler = fillers.enter_context(client.stream("GET", "/api/count", params={"tag": tag, **until}))
                assert json.loads(next(filler.iter_lines())) == {"tag": tag, "i": 0}
            assert started(model_log)[-3:] == ["d", "e", "f"]
            held_steps = steps(model_log)
            since_f = held_steps[next(i for i, step in enumerate(held_steps) if "f" in step) :]
            assert all("c" not in step for step in since_f), since_f
            release.touch()
        assert all(json.loads(line)["tag"] == "a" for line in lines if line), "a stayed in its place throughout"
