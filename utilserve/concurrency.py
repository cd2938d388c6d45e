"""Running coroutines from sync code without touching signal handlers.

``asyncio.run`` and ``asyncio.Runner`` install and then "restore" a Python
SIGINT handler in the main thread, which silently replaces the C-level
handler that servers such as uWSGI install in their workers (their workers
then never exit on shutdown).  A plain per-thread loop does not.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on this thread's own event loop (made once per thread)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)
