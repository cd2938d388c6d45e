"""``python -m utilserve.pool.process.supervisor``: the supervisor, as a web worker starts it (``..client.launch``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ....telemetry import metrics
from ..spec import adopt_import_path
from .server import serve


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utilserve.pool.process.supervisor")
    parser.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
    parser.add_argument("--owner", type=int, help="exit when this process id is gone")
    parser.add_argument("--sys-path", default="[]", help="JSON list of import paths of the starting process")
    args = parser.parse_args(argv)
    metrics.prepare()  # the directory its starter chose, inherited; a sidecar's own otherwise
    adopt_import_path(args.sys_path)
    serve(args.socket, args.owner)


if __name__ == "__main__":
    main()
