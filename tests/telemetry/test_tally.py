"""The request tally: counts kept in plain numbers, written to the metrics files as prometheus_client would.

Each test runs in a fresh process with a metrics directory of its own, as
metrics are set up once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SAME_AS_OBSERVE = """
import bisect, json
from prometheus_client import Histogram
from utilserve.telemetry import metrics

seconds = [0.0, 0.004, 0.005, 0.0051, 0.3, 2.5, 9.9, 10.0, 11.0, 1e9]
observed = Histogram("observed", "h", buckets=metrics.DURATION_BUCKETS, registry=None)
added = Histogram("added", "h", buckets=metrics.DURATION_BUCKETS, registry=None)
counts = [0] * len(metrics.DURATION_BUCKETS)
for s in seconds:
    observed.observe(s)
    counts[bisect.bisect_left(metrics.DURATION_BUCKETS, s)] += 1
metrics.add_observations(added, sum(seconds), counts)
def samples(h):
    found = [(s.name.split("_", 1)[1], s.labels, s.value) for family in h.collect() for s in family.samples]
    return [sample for sample in found if sample[0] != "created"]  # the time each was made
print(json.dumps([samples(observed), samples(added)]))
"""

TALLY = """
import json
from prometheus_client.parser import text_string_to_metric_families
from utilserve.telemetry import metrics, tally as tally_module
from utilserve.telemetry.tally import RequestTally

tally_module.WRITE_EVERY_S = 3600  # only this script's own writes, however slow the machine

def scrape():
    body, _ = metrics.exposition()
    return {
        s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}": s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name.startswith("utilserve_request")
    }

tally = RequestTally()
for _ in range(3):
    tally.started()
    tally.finished("GET", "/items/{id}", 200, 0.02)
tally.started()
tally.finished("POST", "/items", 422, 3.0)
for edge in (0.005, 10.0):  # on a bucket's bound: in that bucket, as observe puts it
    tally.started()
    tally.finished("PUT", "/edge", 200, edge)
tally.started()  # still under way at the write
tally.started()
tally.left()  # raised through
before = scrape()
tally.write()
after = scrape()
tally.finished("GET", "/items/{id}", 200, 0.001)
tally.write()
print(json.dumps([len(before), after, scrape()["utilserve_requests_total{method=GET,route=/items/{id},status=200}"]]))
"""


WRITE_EACH = """
import json
from utilserve.telemetry import metrics, tally as tally_module
from utilserve.telemetry.tally import RequestTally

tally_module.WRITE_EVERY_S = 3600  # no writer thread's write comes in between
tally = RequestTally(write_each=True)
tally.started()
tally.finished("GET", "/items/{id}", 200, 0.02)
body, _ = metrics.exposition()
print(json.dumps(body.decode()))
"""


def run(script: str, tmp_path: Path) -> object:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "UTILSERVE_METRICS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_added_observations_are_what_observe_would_have_written(tmp_path: Path) -> None:
    observed, added = run(SAME_AS_OBSERVE, tmp_path)  # type: ignore[misc]  # a pair, from the script
    assert added == observed
    assert {name: value for name, _, value in observed if name == "count"} == {"count": 10.0}


def test_requests_reach_the_metrics_files_when_written_and_not_before(tmp_path: Path) -> None:
    before, after, total = run(TALLY, tmp_path)  # type: ignore[misc]  # a triple, from the script
    assert before == 0
    get = "method=GET,route=/items/{id}"
    assert after[f"utilserve_requests_total{{{get},status=200}}"] == 3
    assert after["utilserve_requests_total{method=POST,route=/items,status=422}"] == 1
    assert after[f"utilserve_request_duration_seconds_sum{{{get}}}"] == 0.06
    assert after[f"utilserve_request_duration_seconds_bucket{{le=0.01,{get}}}"] == 0
    assert after[f"utilserve_request_duration_seconds_bucket{{le=0.025,{get}}}"] == 3
    assert after["utilserve_request_duration_seconds_bucket{le=2.5,method=POST,route=/items}"] == 0
    assert after["utilserve_request_duration_seconds_bucket{le=5.0,method=POST,route=/items}"] == 1
    assert after["utilserve_requests_in_progress{}"] == 1
    edge = "method=PUT,route=/edge"
    buckets = {
        le: after[f"utilserve_request_duration_seconds_bucket{{le={le},{edge}}}"] for le in ("0.005", "7.5", "10.0")
    }
    assert buckets == {"0.005": 1, "7.5": 1, "10.0": 2}
    assert total == 4


def test_a_tally_that_writes_each_request_has_it_in_the_files_as_it_ends(tmp_path: Path) -> None:
    """uWSGI's tally: a recycled worker may exit with no exit handler left to write its last requests."""
    body = run(WRITE_EACH, tmp_path)
    assert 'utilserve_requests_total{method="GET",route="/items/{id}",status="200"} 1.0' in str(body), body


ITEMS = """
import json
from utilserve.telemetry import metrics, tally as tally_module
from utilserve.telemetry.tally import RequestTally

tally_module.WRITE_EVERY_S = 3600  # only this script's own writes, however slow the machine

def scrape():
    body, _ = metrics.exposition()
    return [line for line in body.decode().splitlines() if line.startswith("utilserve_model_")]

tally = RequestTally()
for outcome in ("ok", "ok", "rejected"):
    tally.item_ended("Echo", outcome)
tally.queued("Echo", 3)
tally.queued("Echo", -1)
before = scrape()
tally.write()
written = scrape()
tally.queued("Echo", -2)
tally.item_ended("Echo", "ok")
tally.write()
print(json.dumps([before, written, scrape()]))
"""


def test_item_outcomes_and_queue_sizes_reach_the_metrics_files_when_written(tmp_path: Path) -> None:
    before, written, later = run(ITEMS, tmp_path)  # type: ignore[misc]  # a triple, from the script
    assert before == []
    assert 'utilserve_model_items_total{model="Echo",outcome="ok"} 2.0' in written, written
    assert 'utilserve_model_items_total{model="Echo",outcome="rejected"} 1.0' in written, written
    assert 'utilserve_model_queue_size{model="Echo"} 2.0' in written, written
    assert 'utilserve_model_items_total{model="Echo",outcome="ok"} 3.0' in later, later
    assert 'utilserve_model_queue_size{model="Echo"} 0.0' in later, later


FORK_WHILE_COUNTING = """
import os, threading
from utilserve.telemetry.tally import tally

inside = threading.Event()
def count_slowly():
    with tally._lock:  # another thread is inside the tally as the fork happens
        inside.set()
        threading.Event().wait(5)
threading.Thread(target=count_slowly, daemon=True).start()
inside.wait()
pid = os.fork()
if pid == 0:
    tally.started()
    tally.finished("GET", "/", 200, 0.01)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_child_forked_while_another_thread_counts_can_count(tmp_path: Path) -> None:
    """A held lock copied by the fork would block the child's first request for ever."""
    assert run(FORK_WHILE_COUNTING, tmp_path) == 0
