"""The processes a test starts: whether one still runs, waiting on them, and killing whatever a test left behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .models.log import events

WAIT_S = 60.0
"""Upper bound for anything that waits on processes starting on a busy machine; a bug fails, not hangs."""


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie (exited, not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``condition`` until it is truthy and return what it returned; fail naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


class Processes:
    """Every pid a test saw; whatever is still alive at teardown is killed, so no test leaks a process."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.pids: set[int] = set()

    def note(self, *pids: int) -> None:
        self.pids.update(pid for pid in pids if pid)

    def from_log(self) -> set[int]:
        """Model workers and their supervisors, as the model's ``setup`` recorded them.

        A model set up in this process (a thread pool's) names no process of
        the test's: its parent is whatever runs the tests, a shell or CI.
        """
        here = os.getpid()
        found = {pid for e in events(self.log, event="setup") if e["pid"] != here for pid in (e["pid"], e["ppid"])}
        self.note(*found)
        return found

    def kill_leftovers(self) -> None:
        """SIGKILL every process seen that still runs, but never this one nor any that it descends from."""
        self.from_log()
        for pid in self.pids - ancestry(os.getpid()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def ancestry(pid: int) -> set[int]:
    """``pid`` and the processes it descends from, up to init."""
    lineage = set()
    while pid > 1 and pid not in lineage:
        lineage.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return lineage
