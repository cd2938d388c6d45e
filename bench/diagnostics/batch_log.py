"""One JSON line per batch a model runs, appended to the file ``BENCH_BATCH_LOG`` names (nothing without it).

One ``write`` per line, so that the lines of a server's processes do not interleave.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

VARIABLE = "BENCH_BATCH_LOG"


def record(size: int, **seconds: float) -> None:
    """Log a batch of ``size`` items, and how long each named phase of its cycle took."""
    if path := os.environ.get(VARIABLE):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps({"at": time.time(), "size": size, **seconds}) + "\n").encode())
        finally:
            os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
