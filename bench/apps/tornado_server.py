"""Serve a Tornado app on Tornado's own HTTPServer, one process: the same code for native and utilserve.

``python -m bench.apps.tornado_server MODULE:ATTR --port PORT [--host HOST]``

``ATTR`` is a ``tornado.web.Application``.  If the module also defines a
utilserve ``service``, its startup hooks run before serving and its shutdown
hooks after.  If ``ATTR`` is a utilserve ``Service`` (not an Application),
the service's own ``run()`` serves it instead.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys


async def serve(app, host: str, port: int, service=None) -> None:
    import tornado.httpserver

    if service is not None:
        await service.astartup()
    server = tornado.httpserver.HTTPServer(app)
    server.listen(port, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.stop()
        if service is not None:
            await service.ashutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    module_name, _, attribute = args.target.partition(":")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute or "app")

    import tornado.web

    from utilserve import Service

    if isinstance(target, Service):
        target.run(host=args.host, port=args.port)
        return
    if not isinstance(target, tornado.web.Application):
        sys.exit(f"{args.target} is a {type(target).__name__}, not a tornado.web.Application or utilserve Service")
    service = getattr(module, "service", None)
    asyncio.run(serve(target, args.host, args.port, service if isinstance(service, Service) else None))


if __name__ == "__main__":
    main()
