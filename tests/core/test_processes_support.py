"""The process bookkeeping of the tests: what a test left behind is killed, and nothing that runs the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..support.servers import ROOT

TEST_RUN = """
import subprocess, sys, time
from pathlib import Path
from tests.support.models.log import events, record
from tests.support.processes import Processes

log = Path(sys.argv[1])
record(event="setup")  # a model set up in the test's own process, as a thread pool's is
worker = subprocess.Popen([sys.executable, "-c", "from tests.support.models.log import record; import time; "
                           "record(event='setup'); time.sleep(60)"])  # and one set up in a process of its own
while len(events(log, event="setup")) < 2:
    time.sleep(0.01)
Processes(log).kill_leftovers()
print("worker", worker.wait(10))
"""


def test_leftovers_are_the_tests_own_processes_never_the_shell_that_runs_the_tests(tmp_path: Path) -> None:
    """The shell that runs the tests (CI's) outlives a test whose model logged its setup from the test process."""
    log = tmp_path / "model.log"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MODEL_LOG": str(log)}
    shell = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -c "$0" "$1"; echo "shell still runs"', TEST_RUN, str(log)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (shell.returncode, shell.stdout.split("\n")) == (0, ["worker -9", "shell still runs", ""]), shell.stderr
