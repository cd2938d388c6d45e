"""Serving one Ray Serve app from ``python -m bench.apps.NAME --port P``, for ``pool_ray`` and ``stream_ray``.

A fresh local Ray (never one already running), access logs off as in the
other servers, and a stop on SIGTERM that shuts Serve and Ray down: Ray's own
handler exits at once and leaves its agents behind.
"""

import argparse
import os
import signal
import threading

import ray
from ray import serve
from ray.serve import Application

LOGGING = {"enable_access_log": False, "log_level": "WARNING"}


def main(app: Application, name: str, route_prefix: str) -> None:
    """Serve ``app`` at ``route_prefix`` on the ``--port`` of the command line until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    ray.init(
        address="local", include_dashboard=False, log_to_driver=False, configure_logging=False, num_cpus=os.cpu_count()
    )
    stop = threading.Event()  # set after ray.init, whose own handler exits at once and leaves Ray's agents behind
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=LOGGING)
        serve.run(app, name=name, route_prefix=route_prefix)
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
