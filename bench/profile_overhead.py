"""In-process cost per request of the app layer: native hello-world vs utilserve hello-world.

    python -m bench.profile_overhead --backend starlette [-n 20000] [--repeat 5] [--profile] [--top 25]

No server and no sockets: the ASGI/WSGI app is called directly with a fresh
``GET /hello`` scope/environ (headers as wrk sends them) in a tight loop, so
the difference between the two apps is what utilserve adds to every request,
free of network and load-generator noise.  ``--profile`` runs cProfile over
the utilserve loop and prints the top functions by own time (``tottime``)
with their share of the total.

ASGI backends: starlette, fastapi, falcon-asgi.  WSGI backends: flask,
falcon-wsgi.  Not covered: Django (one process configures Django once, so
its native and utilserve apps cannot share a process), Sanic and Tornado
(they own their servers).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib
import io
import os
import pstats
import statistics
import sys
import time
from typing import Any

# label -> (UTILSERVE_BACKEND, UTILSERVE_ASYNCHRONOUS, interface, native target, endpoint kind)
TARGETS = {
    "starlette": ("starlette", "", "asgi", "bench.apps.native_starlette:app", "async"),
    "fastapi": ("fastapi", "", "asgi", "bench.apps.native_fastapi:app", "async"),
    "falcon-asgi": ("falcon", "1", "asgi", "bench.apps.native_falcon:asgi_app", "async"),
    "flask": ("flask", "", "wsgi", "bench.apps.native_flask:app", "sync"),
    "falcon-wsgi": ("falcon", "0", "wsgi", "bench.apps.native_falcon:wsgi_app", "sync"),
}
HEADERS = [("host", "127.0.0.1:8000")]  # what wrk sends for a plain GET


def load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


# --- drivers: run the app n times, return the body of the last response -----------------------------


def asgi_driver(app: Any) -> Any:
    base = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/hello", "raw_path": b"/hello", "root_path": "",
        "query_string": b"", "headers": [(k.encode(), v.encode()) for k, v in HEADERS],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def loop(n: int) -> bytes:
        body = b""

        async def send(message: dict[str, Any]) -> None:
            nonlocal body
            if message["type"] == "http.response.body":
                body = message.get("body", b"")

        for _ in range(n):
            await app(dict(base), receive, send)
        return body

    return loop


def wsgi_driver(app: Any) -> Any:
    base = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/hello", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "RAW_URI": "/hello",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in HEADERS},
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def loop(n: int) -> bytes:
        body = b""
        for _ in range(n):
            environ = dict(base)
            environ["wsgi.input"] = io.BytesIO(b"")
            result = app(environ, start_response)
            body = b"".join(result)
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return body

    return loop


def timed(run: Any, n: int, interface: str, event_loop: asyncio.AbstractEventLoop) -> tuple[float, bytes]:
    gc.collect()
    start = time.perf_counter()
    body = event_loop.run_until_complete(run(n)) if interface == "asgi" else run(n)
    return (time.perf_counter() - start) / n * 1e6, body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=sorted(TARGETS), default="starlette")
    parser.add_argument("-n", type=int, default=20000, help="requests per timed loop (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed loops per app, alternating (default 5)")
    parser.add_argument("--profile", action="store_true", help="cProfile the utilserve loop")
    parser.add_argument("--top", type=int, default=25, help="functions to list with --profile (default 25)")
    args = parser.parse_args(argv)

    backend, asynchronous, interface, native_target, kind = TARGETS[args.backend]
    os.environ["UTILSERVE_BACKEND"] = backend
    os.environ["BENCH_ENDPOINT"] = kind
    if asynchronous:
        os.environ["UTILSERVE_ASYNCHRONOUS"] = asynchronous
    event_loop = asyncio.new_event_loop()
    try:
        import uvloop

        event_loop = uvloop.new_event_loop()  # what uvicorn runs the apps on
    except ImportError:
        pass
    asyncio.set_event_loop(event_loop)

    native_app = load(native_target)
    from bench.apps import us_hello

    us_app = us_hello.app
    if interface == "asgi":
        event_loop.run_until_complete(us_hello.service.astartup())
        native, ours = asgi_driver(native_app), asgi_driver(us_app)
    else:
        us_hello.service.startup()
        native, ours = wsgi_driver(native_app), wsgi_driver(us_app)

    for name, run in (("native", native), ("utilserve", ours)):
        _, body = timed(run, 200, interface, event_loop)  # warm-up, and check the answer
        print(f"{name:9} body {body!r}")
    results: dict[str, list[float]] = {"native": [], "utilserve": []}
    for index in range(args.repeat):
        order = (("native", native), ("utilserve", ours))
        for name, run in order if index % 2 == 0 else reversed(order):
            results[name].append(timed(run, args.n, interface, event_loop)[0])
    native_us = statistics.median(results["native"])
    ours_us = statistics.median(results["utilserve"])
    print(f"\n{args.backend} ({interface}, {kind} endpoints), {args.n} requests x {args.repeat}, median:")
    print(f"  native     {native_us:8.1f} us/request")
    print(f"  utilserve  {ours_us:8.1f} us/request   (+{ours_us - native_us:.1f} us, "
          f"{ours_us / native_us:.2f}x the native app layer)")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        if interface == "asgi":
            event_loop.run_until_complete(ours(args.n))
        else:
            ours(args.n)
        profiler.disable()
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
        print(f"\ncProfile of {args.n} utilserve requests: total {total:.3f} s "
              f"({total / args.n * 1e6:.1f} us/request under the profiler); top by own time:")
        print(f"  {'own %':>6} {'cum %':>6} {'calls/req':>9}  function")
        for (filename, line, function), (_, calls, tottime, cumtime, _) in rows[: args.top]:
            where = filename.replace(os.getcwd() + "/", "")
            for marker in ("site-packages/",):
                if marker in where:
                    where = where.split(marker, 1)[1]
            print(f"  {tottime / total:6.1%} {cumtime / total:6.1%} {calls / args.n:9.2f}  "
                  f"{function} ({where}:{line})")
    event_loop.close()


if __name__ == "__main__":
    main()
