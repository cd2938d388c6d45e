"""Serve a ``tornado.web.Application`` on Tornado's own HTTPServer, one process, for both apps of the tornado row.

    python -m bench.apps.tornado_server MODULE:ATTR --host HOST --port PORT

A utilserve ``service`` in the module gets its startup and shutdown hooks run around serving.
"""

import argparse
import asyncio
import importlib
import signal

import tornado.httpserver


async def serve(module_name: str, attribute: str, host: str, port: int) -> None:
    module = importlib.import_module(module_name)
    service = getattr(module, "service", None)
    if service is not None:
        await service.astartup()
    server = tornado.httpserver.HTTPServer(getattr(module, attribute))
    server.listen(port, host)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.stop()
        if service is not None:
            await service.ashutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    module_name, _, attribute = args.target.partition(":")
    asyncio.run(serve(module_name, attribute, args.host, args.port))
