"""``python -m utilserve.pool.process.worker``: a model worker process, as its supervisor starts it.

A fresh interpreter, so CUDA and native thread pools start clean. It
inherits two sockets: ``--control``, a socketpair end to the supervisor
(``READY``/``FAILED`` after ``setup()``; ``STOP`` or end of file makes it
drain and exit), and ``--listen``, the listening socket that the supervisor
keeps across restarts and web processes connect to.
"""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Sequence

from ....telemetry import metrics
from ..spec import ModelSpec, adopt_import_path
from .run import serve


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utilserve.pool.process.worker")
    parser.add_argument("--control", type=int, required=True, help="the inherited socketpair end")
    parser.add_argument("--listen", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--spec", required=True, help="the model's ModelSpec as JSON")
    parser.add_argument("--parent", type=int, required=True, help="the supervisor's pid")
    parser.add_argument("--sys-path", default="[]", help="JSON list of the supervisor's import paths")
    args = parser.parse_args(argv)
    metrics.prepare()  # in the directory its supervisor chose, inherited
    adopt_import_path(args.sys_path)
    spec = ModelSpec(**json.loads(args.spec))
    serve(socket.socket(fileno=args.control), socket.socket(fileno=args.listen), spec, args.parent)


if __name__ == "__main__":
    main()
