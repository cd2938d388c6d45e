"""Metrics under pre-fork servers with the process pool: any worker's scrape shows the totals of every process.

gunicorn -w 4 and uWSGI --processes 4 with the deploy/ files, each worker
recycled after 100 requests (``--max-requests``), so that 1,000 requests
outlive several generations of workers: their counts must neither drop nor
double.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from utilserve.telemetry.tally import WRITE_EVERY_S

from ..support.pool_over_http import wait_ready
from ..support.processes import wait_until
from ..support.servers import BIN, Server, free_port

APP = "tests.apps.pool_process:app"
REQUESTS = 1000


def gunicorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "-w", "4",
        "--max-requests", "100", APP,
    ]  # fmt: skip


def uwsgi(port: int) -> list[str]:
    return [
        str(BIN / "uwsgi"), "--ini", "deploy/uwsgi.ini", "--http11-socket", f"127.0.0.1:{port}", "--processes", "4",
        "--max-requests", "100", "--virtualenv", sys.prefix, "--module", APP,
    ]  # fmt: skip


SERVERS = {"flask@gunicorn": gunicorn, "flask@uwsgi": uwsgi}


def scrape(server: Server) -> dict[str, float]:
    """The samples of one scrape (a new connection: any worker may answer), by name and labels."""
    response = httpx.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=30)
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{key}={value}" for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def work(server: Server) -> list[int]:
    """``REQUESTS`` requests from 16 threads, a new connection each, so they spread over the web workers."""

    def get(x: int) -> int:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Connection": "close"}) as client:
            return client.get("/api/work", params={"x": x}).status_code

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(get, range(REQUESTS)))


@pytest.mark.parametrize("name", list(SERVERS))
def test_every_scrape_shows_the_totals_of_all_workers_across_recycling(
    name: str, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    port = free_port()
    server = running(Server(SERVERS[name](port), port, {"MODEL_LOG": str(tmp_path / "model.log")}).start())
    wait_ready(server, in_a_row=4)

    assert work(server) == [200] * REQUESTS

    def requests(samples: dict[str, float]) -> float:
        return sum(
            value
            for key, value in samples.items()
            if key.startswith("utilserve_requests_total{") and "route=/api/work," in key
        )

    # each worker writes its counts within WRITE_EVERY_S: a scrape may find the last ones not yet there
    def written(samples: dict[str, float]) -> bool:
        return requests(samples) >= REQUESTS and samples.get("utilserve_model_batch_size_sum{model=Echo}") == REQUESTS

    wait_until(lambda: written(scrape(server)), "every worker's requests and batches written", 40 * WRITE_EVERY_S)
    for _ in range(8):
        samples = scrape(server)
        assert requests(samples) == REQUESTS, {key: value for key, value in samples.items() if "requests_total" in key}
        assert samples["utilserve_requests_total{method=GET,route=/api/work,status=200}"] == REQUESTS
        assert samples["utilserve_model_batch_size_count{model=Echo}"] > 0
        assert samples["utilserve_model_batch_size_sum{model=Echo}"] == REQUESTS
        assert samples["utilserve_model_items_total{model=Echo,outcome=ok}"] == REQUESTS
