"""The switches of metrics and the access log, each in a fresh process (logging and metrics are per process)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from utilserve.telemetry.context import new_request_id
from utilserve.telemetry.logs import BatchingStreamHandler, access_logger, formatter, log_request

from ..support.processes import wait_until

SCRIPT = """
import sys
from utilserve import API, Request, Service, api

class Root(API):
    @api.get("/items/{item_id}")
    def item(self, item_id: int) -> dict:
        return {"id": item_id}

handler = Service(name="switches", api=Root, route="/api").setup()
for path in sys.argv[1:]:
    response = handler.handle(Request("GET", path, "", {"x-request-id": "req-" + path.rsplit("/", 1)[1]}))
    print(response.status, response.body.decode() if path == "/metrics" else "", flush=True)
"""


def run(env: dict[str, str], *paths: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    names = ("PROMETHEUS_MULTIPROC_DIR", "UTILSERVE_METRICS", "UTILSERVE_ACCESS_LOG", "UTILSERVE_LOG_FORMAT")
    clean = {name: value for name, value in os.environ.items() if name not in names}
    full = {**clean, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), **env}
    return subprocess.run([sys.executable, "-c", SCRIPT, *paths], env=full, capture_output=True, text=True, timeout=60)


def test_json_access_lines_carry_every_field(tmp_path: Path) -> None:
    done = run({"UTILSERVE_LOG_FORMAT": "json"}, "/api/items/1", "/api/items/x", tmp_path=tmp_path)
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(r["method"], r["route"], r["path"], r["status"], r["request_id"]) for r in records] == [
        ("GET", "/api/items/{item_id}", "/api/items/1", 200, "req-1"),
        ("GET", "/api/items/{item_id}", "/api/items/x", 422, "req-x"),
    ], done.stderr
    assert all(r["name"] == "utilserve.access" and r["bytes"] > 0 and r["duration_ms"] >= 0 for r in records)


def test_plain_access_lines_by_default_and_none_when_switched_off(tmp_path: Path) -> None:
    plain = run({}, "/api/items/1", tmp_path=tmp_path)
    silent = run({"UTILSERVE_ACCESS_LOG": "0"}, "/api/items/1", tmp_path=tmp_path)
    assert "GET /api/items/1 200 " in plain.stderr and 'route="/api/items/{item_id}" id=req-1 ' in plain.stderr
    assert (silent.stdout, silent.stderr) == ("200 \n", "")


def test_metrics_count_in_the_shared_directory_and_switch_off(tmp_path: Path) -> None:
    counted = run({}, "/api/items/1", "/api/items/2", "/nowhere/3", "/metrics", tmp_path=tmp_path)
    exposition = counted.stdout.split("\n", 3)[3].removeprefix("200 ")
    samples = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == "utilserve_requests_total"
    }
    assert samples == {("/api/items/{item_id}", "200"): 2.0, ("<unmatched>", "404"): 1.0}, counted.stdout
    assert any(path.name.startswith("counter_") for path in (tmp_path / "metrics").iterdir())

    off = run({"UTILSERVE_METRICS": "0"}, "/api/items/1", "/metrics", tmp_path=tmp_path / "off")
    assert off.stdout.splitlines()[1].startswith("404 "), off.stdout
    assert not (tmp_path / "off" / "metrics").exists()


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_metrics_switch_that_is_not_a_flag_is_refused_by_name(tmp_path: Path, value: str) -> None:
    done = run({"UTILSERVE_METRICS": value}, tmp_path=tmp_path)
    assert done.returncode != 0 and "UTILSERVE_METRICS must be one of 1/true/yes/0/false/no" in done.stderr


def test_new_request_ids_are_random_uuid4_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for request_id in ids:
        parsed = uuid.UUID(hex=request_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (request_id, 4, uuid.RFC_4122)


@pytest.mark.parametrize("kind", ["plain", "json"])
def test_access_log_times_read_as_logging_writes_them(kind: str) -> None:
    ours, standard = formatter(kind), logging.Formatter()
    for created in (1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.25):
        record = logging.makeLogRecord({"created": created, "msecs": (created - int(created)) * 1000})
        assert ours.formatTime(record) == standard.formatTime(record)
    record = logging.makeLogRecord({"created": 1_700_000_000.0, "msecs": 0.0})
    assert ours.formatTime(record, "%H:%M") == standard.formatTime(record, "%H:%M")


class Writes:
    """A stream that counts its writes."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def test_the_default_handler_writes_lines_in_batches_soon_after_they_come() -> None:
    stream = Writes()
    handler = BatchingStreamHandler(stream)  # type: ignore[arg-type]  # a stream as far as logging goes
    handler.setFormatter(logging.Formatter("%(message)s"))
    records = [
        logging.LogRecord("utilserve.access", logging.INFO, __file__, 1, f"line {n}", None, None) for n in range(50)
    ]
    for record in records:
        handler.handle(record)
    assert stream.writes == [] or len(stream.writes) < 50
    wait_until(lambda: "".join(stream.writes).count("\n") == 50, "the batch written by the handler's thread")
    assert len(stream.writes) < 50 and "".join(stream.writes).splitlines() == [f"line {n}" for n in range(50)]

    handler.handle(records[0])
    handler.flush()
    assert stream.writes[-1] == "line 0\n"


def test_a_line_made_without_a_record_is_the_line_the_formatter_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Writes()
    handler = BatchingStreamHandler(stream)  # type: ignore[arg-type]  # a stream as far as logging goes
    handler.setFormatter(formatter("plain"))
    monkeypatch.setattr(access_logger, "handlers", [handler])
    monkeypatch.setattr(access_logger, "propagate", False)
    monkeypatch.setattr(access_logger, "disabled", False)
    monkeypatch.setattr(access_logger, "level", logging.INFO)
    for size in (12, None):
        log_request("GET", "/items/{item_id}", "/items/1", 200, 1.25, size, "direct")
        handler.addFilter(lambda record: True)  # a filter needs the record: the formatter's path
        log_request("GET", "/items/{item_id}", "/items/1", 200, 1.25, size, "direct")
        handler.filters.clear()
    handler.flush()
    lines = [line.split(" ", 2) for line in "".join(stream.writes).splitlines()]
    assert len(lines) == 4 and lines[0][2] == lines[1][2] and lines[2][2] == lines[3][2], lines
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\d", date) and re.fullmatch(r"\d\d:\d\d:\d\d,\d{3}", t) for date, t, _ in lines
    )
    assert lines[2][2].startswith("GET /items/1 200 1.2ms - route=")
