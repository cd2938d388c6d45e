"""The hooks service on Sanic, whose workers wait 3 seconds before Sanic sets their signal handlers.

Each worker writes ``window <pid>`` to $HOOKS_LOG as it starts to wait: a
SIGTERM sent then comes after the startup hooks ran and before Sanic
handles it, a moment that lasts microseconds in a real worker.
"""

import time

from sanic.server import runners

from tests.apps.hooks import app, record

set_signals = runners._setup_system_signals


def set_signals_late(*args: object, **kwargs: object) -> None:
    record("window")
    time.sleep(3)
    set_signals(*args, **kwargs)


runners._setup_system_signals = set_signals_late

__all__ = ["app"]
