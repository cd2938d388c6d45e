"""Serving one LitServe API from ``python -m bench.apps.NAME --port P``, for the ``*_litserve`` apps.

One API server process and one inference worker on the CPU, LitServe's
logs at warnings only, as the other servers run.
"""

import argparse

import litserve as ls


def port() -> int:
    """The ``--port`` of the command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    return int(parser.parse_known_args()[0].port)


def serve(api: ls.LitAPI, port: int, timeout: float = 30.0) -> None:
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=timeout)
    server.run(host="127.0.0.1", port=port, num_api_servers=1, log_level="warning", generate_client_file=False)
