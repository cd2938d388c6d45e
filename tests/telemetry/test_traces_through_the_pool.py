"""One request to a model route through the process pool, traced end to end (in a fresh process: the global
tracer provider is set once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..support.servers import ROOT

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"

SCRIPT = f"""
import asyncio, json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from utilserve import Request, Service
from tests.support.models.traced import Traced

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

service = Service(name="traced", route="/api")
service.model(Traced, route="/double", pool="process")
handler = service.setup()
service.startup()
headers = {{"content-type": "application/json", "traceparent": "00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"}}
response = asyncio.run(handler.ahandle(Request("POST", "/api/double", "", headers, b'{{"x": 21}}')))
service.shutdown()
(span,) = exporter.get_finished_spans()
print(json.dumps({{
    "status": response.status, "body": response.body.decode(), "name": span.name, "kind": span.kind.name,
    "trace_id": format(span.context.trace_id, "032x"), "span_id": format(span.context.span_id, "016x"),
    "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
}}))
"""


def test_a_request_through_the_process_pool_gives_a_server_span_and_a_linked_batch_span(tmp_path: Path) -> None:
    span_log = tmp_path / "spans.jsonl"
    env = {**os.environ, "SPAN_LOG": str(span_log), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    server = json.loads(done.stdout.splitlines()[-1])

    assert (server["status"], server["body"]) == (200, '{"x":42}')
    assert (server["name"], server["kind"]) == ("POST /api/double", "SERVER")
    assert (server["trace_id"], server["parent_span_id"]) == (CLIENT_TRACE_ID, CLIENT_SPAN_ID)

    (batch,) = [json.loads(line) for line in span_log.read_text().splitlines()]
    assert batch["name"] == "batch Traced" and batch["parent_id"] is None
    assert [(link["context"]["trace_id"], link["context"]["span_id"]) for link in batch["links"]] == [
        ("0x" + server["trace_id"], "0x" + server["span_id"])
    ]
    assert batch["attributes"]["utilserve.batch.size"] == 1
