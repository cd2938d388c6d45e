"""In-process cost per request of the app layer: native hello-world vs utilserve hello-world.

    python -m bench.profile_overhead --backend starlette [-n 20000] [--repeat 5] [--profile] [--top 25]

No server and no sockets: the ASGI/WSGI app is called directly with a fresh
``GET /hello`` scope/environ (headers as wrk sends them) in a tight loop, so
the difference between the two apps is what utilserve adds to every request,
free of network and load-generator noise.  Each app runs alone in a fresh
process (two frameworks' apps in one process skew each other), timed in CPU
time, alternating, median of ``--repeat``.  ``--profile`` then runs cProfile
over the utilserve loop and prints the top functions by own time with their
share of the total, and every utilserve function by cumulative time.

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
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# label -> (UTILSERVE_BACKEND, UTILSERVE_ASYNCHRONOUS, interface, native target, endpoint kind)
TARGETS = {
    "starlette": ("starlette", "", "asgi", "bench.apps.native_starlette:app", "async"),
    "fastapi": ("fastapi", "", "asgi", "bench.apps.native_fastapi:app", "async"),
    "falcon-asgi": ("falcon", "1", "asgi", "bench.apps.native_falcon:asgi_app", "async"),
    "flask": ("flask", "", "wsgi", "bench.apps.native_flask:app", "sync"),
    "falcon-wsgi": ("falcon", "0", "wsgi", "bench.apps.native_falcon:wsgi_app", "sync"),
}
ROOT = Path(__file__).resolve().parent.parent
HEADERS = [("host", "127.0.0.1:8000")]  # what wrk sends for a plain GET


def load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


# --- drivers: run the app n times, return the body of the last response -----------------------------


def asgi_driver(app: Any) -> Any:
    base = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in HEADERS],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
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
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/hello",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "RAW_URI": "/hello",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
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


def measure(args: argparse.Namespace) -> None:
    """Child process: build one side's app only, time it (CPU time), optionally cProfile it; print JSON."""
    _, _, interface, native_target, _ = TARGETS[args.backend]
    event_loop = asyncio.new_event_loop()
    try:
        import uvloop

        event_loop = uvloop.new_event_loop()  # what uvicorn runs the apps on
    except ImportError:
        pass
    asyncio.set_event_loop(event_loop)
    if args.side == "native":
        app = load(native_target)
    else:
        from bench.apps import us_hello

        app = us_hello.app
        if interface == "asgi":
            event_loop.run_until_complete(us_hello.service.astartup())
        else:
            us_hello.service.startup()
    driver = asgi_driver(app) if interface == "asgi" else wsgi_driver(app)

    def run(n: int) -> bytes:
        return event_loop.run_until_complete(driver(n)) if interface == "asgi" else driver(n)

    body = run(500)  # warm-up, and the answer to check
    if args.profile:
        profile(run, args)
        return
    gc.collect()
    start = time.process_time()  # CPU time: preemption by other work on the machine does not count
    run(args.n)
    cost = (time.process_time() - start) / args.n * 1e6
    print(json.dumps({"us": cost, "body": body.decode("latin-1")}))


def profile(run: Any, args: argparse.Namespace) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run(args.n)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats.items()  # type: ignore[attr-defined]

    def where(filename: str, line: int) -> str:
        filename = filename.replace(str(ROOT) + "/", "")
        if "site-packages/" in filename:
            filename = filename.split("site-packages/", 1)[1]
        elif "/lib/python" in filename:
            filename = "stdlib/" + filename.split("/lib/python", 1)[1].split("/", 1)[1]
        return f"{filename}:{line}"

    def show(rows: Any) -> None:
        print(f"  {'own %':>6} {'cum %':>6} {'calls/req':>9}  function")
        for (filename, line, function), (_, calls, tottime, cumtime, _) in rows:
            print(
                f"  {tottime / total:6.1%} {cumtime / total:6.1%} {calls / args.n:9.2f}  "
                f"{function} ({where(filename, line)})"
            )

    print(
        f"cProfile, {args.side} app, {args.n} requests: {total / args.n * 1e6:.1f} us/request under the "
        f"profiler; top {args.top} by own time:"
    )
    show(sorted(entries, key=lambda item: item[1][2], reverse=True)[: args.top])
    if args.side == "utilserve":
        ours = [item for item in entries if "/utilserve/" in item[0][0] or item[0][0].startswith("utilserve/")]
        print("utilserve's own functions, by cumulative time:")
        show(sorted(ours, key=lambda item: item[1][3], reverse=True))


def child(backend: str, side: str, n: int, extra: list[str]) -> subprocess.CompletedProcess[str]:
    _, asynchronous, _, _, kind = TARGETS[backend]
    env = {
        **os.environ,
        "UTILSERVE_BACKEND": TARGETS[backend][0],
        "BENCH_ENDPOINT": kind,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    if asynchronous:
        env["UTILSERVE_ASYNCHRONOUS"] = asynchronous
    argv = [sys.executable, "-m", "bench.profile_overhead", "--backend", backend, "--side", side, "-n", str(n), *extra]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} child failed:\n{done.stdout}\n{done.stderr}")
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=sorted(TARGETS), default="starlette")
    parser.add_argument("-n", type=int, default=20000, help="requests per timed loop (default 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed processes per app, alternating (default 5)")
    parser.add_argument("--profile", action="store_true", help="also cProfile the utilserve app")
    parser.add_argument("--profile-native", action="store_true", help="also cProfile the native app")
    parser.add_argument("--top", type=int, default=25, help="functions to list when profiling (default 25)")
    parser.add_argument("--side", choices=["native", "utilserve"], help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.side:
        measure(args)
        return

    # Each app runs in its own fresh process: two frameworks' apps in one process skew each other's numbers.
    costs: dict[str, list[float]] = {"native": [], "utilserve": []}
    bodies = {}
    for index in range(args.repeat):
        order = ["native", "utilserve"] if index % 2 == 0 else ["utilserve", "native"]
        for side in order:
            result = json.loads(child(args.backend, side, args.n, []).stdout.strip().splitlines()[-1])
            costs[side].append(result["us"])
            bodies[side] = result["body"]
    _, _, interface, _, kind = TARGETS[args.backend]
    native_us, ours_us = statistics.median(costs["native"]), statistics.median(costs["utilserve"])
    for side in ("native", "utilserve"):
        print(f"{side:9} body {bodies[side]!r}  runs: " + ", ".join(f"{c:.1f}" for c in costs[side]))
    print(
        f"\n{args.backend} ({interface}, {kind} endpoints), app layer only, CPU time, {args.n} requests x "
        f"{args.repeat} processes per app, median:"
    )
    print(f"  native     {native_us:8.1f} us/request")
    print(
        f"  utilserve  {ours_us:8.1f} us/request   ({ours_us - native_us:+.1f} us, "
        f"{ours_us / native_us:.2f}x the native app layer)"
    )
    for side, wanted in (("utilserve", args.profile), ("native", args.profile_native)):
        if wanted:
            print()
            print(child(args.backend, side, args.n, ["--profile", "--top", str(args.top)]).stdout, end="")


if __name__ == "__main__":
    main()
