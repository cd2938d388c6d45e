"""The log that the models keep in ``$MODEL_LOG``, and how tests read it back.

A model appends one JSON line per event: its pid, its parent's (a process
pool's supervisor) and what it saw. Each line is one ``write`` to a file
opened for appending, so lines from different processes never interleave.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def record(**event: Any) -> None:
    """Append ``event`` to ``$MODEL_LOG``, if one is set (a benchmark runs the models without)."""
    path = os.environ.get("MODEL_LOG")
    if path:
        line = json.dumps({"pid": os.getpid(), "ppid": os.getppid(), **event}) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def events(log: Path, since: int = 0, **fields: Any) -> list[dict[str, Any]]:
    """The events in ``log`` from byte offset ``since`` on whose ``fields`` have the values given.

    A line not yet ended is left out: its writer may be copying it in as it is read.
    """
    if not log.exists():
        return []
    with log.open() as lines:
        lines.seek(since)
        complete = lines.read().rpartition("\n")[0]
    return [e for e in map(json.loads, complete.splitlines()) if fields.items() <= e.items()]
