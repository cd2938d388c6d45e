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
        """Model workers and their supervisors, as the model's ``setup`` recorded them."""
        found = {pid for e in events(self.log, event="setup") for pid in (e["pid"], e["ppid"])}
        self.note(*found)
        return found

    def kill_leftovers(self) -> None:
        self.from_log()
        for pid in self.pids:
            if alive(pid) and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
