"""A SIGTERM that nobody handles, in a process whose WSGI app follows it (waitress's, a script's).

Each case runs in a process of its own, since it installs a signal handler
and ends by the signal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SERVICE = """
import asyncio, os, signal, sys, time
from utilserve import Service, lifecycle

log = open(sys.argv[1], "a", buffering=1)
service = Service(__name__, name="signalled", backend="flask")
lifecycle.STOP_WAIT_S = 2.0


@service.on_shutdown
async def slow_shutdown():
    log.write("hook begins\\n")
    if sys.argv[2] == "during-a-stop":
        os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.3)
    log.write("hook ends\\n")
    if sys.argv[2] == "while-a-hook-hangs":
        time.sleep(60)


service.application()  # a WSGI app follows its process: it stops before a SIGTERM nobody handles
service.setup().start_once()
if sys.argv[2] in ("while-serving", "while-a-hook-hangs"):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
service.shutdown()  # the process's own stop, under way when the signal comes
log.write("stop returned\\n")
time.sleep(30)
"""


@pytest.mark.parametrize("when", ["while-serving", "during-a-stop", "while-a-hook-hangs"])
def test_sigterm_runs_the_shutdown_hooks_once_and_then_ends_the_process(tmp_path: Path, when: str) -> None:
    log = tmp_path / "events.log"
    script = tmp_path / "service.py"
    script.write_text(textwrap.dedent(SERVICE))
    done = subprocess.run([sys.executable, str(script), str(log), when], capture_output=True, text=True, timeout=30)
    assert done.returncode == -signal.SIGTERM, done.stderr
    events = log.read_text().splitlines()
    assert events.count("hook begins") == 1 and events.count("hook ends") == 1, events
    assert events.index("hook begins") < events.index("hook ends"), events
