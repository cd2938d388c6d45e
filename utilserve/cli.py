"""``utilserve`` / ``python -m utilserve``: run, describe and debug services."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .backends import BACKENDS
from .pool import Model
from .service import Service


def load_target(target: str) -> Any:
    """Import ``module:attribute`` (the current directory is importable, as with uvicorn)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"utilserve: TARGET must be 'module:attribute', got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"utilserve: module {module_name!r} has no attribute {attribute!r}") from None


def _service(target: str) -> Service:
    found = load_target(target)
    if not isinstance(found, Service):
        raise SystemExit(f"utilserve: {target} is a {type(found).__name__}, not a utilserve Service")
    return found


def _run(args: argparse.Namespace) -> None:
    if args.reload:
        _run_reloading(args)
        return
    if args.reload_dir:
        raise SystemExit("utilserve run: --reload-dir needs --reload")
    if args.backend:
        os.environ["UTILSERVE_BACKEND"] = args.backend
    _service(args.target).run(host=args.host, port=args.port)


def _run_reloading(args: argparse.Namespace) -> None:
    from . import reload

    argv = [sys.executable, "-m", "utilserve", "run", args.target]
    for flag in ("backend", "host", "port"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag}", str(getattr(args, flag))]
    watched = [Path(d) for d in args.reload_dir or [os.getcwd()]]
    for directory in watched:
        if not directory.is_dir():
            raise SystemExit(f"utilserve run: --reload-dir {directory} is not a directory")
    reload.serve(argv, watched)


def _openapi(args: argparse.Namespace) -> None:
    print(json.dumps(_service(args.target).openapi(), indent=2))


def _debug(args: argparse.Namespace) -> None:
    model_cls = load_target(args.target)
    if not (isinstance(model_cls, type) and issubclass(model_cls, Model)):
        raise SystemExit(f"utilserve: {args.target} is not a utilserve Model subclass")
    try:
        item = model_cls.Input.model_validate_json(args.input)
    except ValidationError as exc:
        raise SystemExit(f"utilserve: --input is not a valid {model_cls.__name__}.Input:\n{exc}") from None
    model = model_cls()
    model.setup()
    try:
        (result,) = model.predict([item])
    finally:
        model.teardown()
    if isinstance(result, Exception):
        raise SystemExit(f"utilserve: {model_cls.__name__} failed this item: {type(result).__name__}: {result}")
    print(model_cls.Output.model_validate(result).model_dump_json())


def _create(args: argparse.Namespace) -> None:
    from .scaffold import ScaffoldError, create

    try:
        root = create(args.name, args.backend, args.model, Path.cwd())
    except ScaffoldError as exc:
        raise SystemExit(f"utilserve create: {exc}") from None
    print(f"created {root}; its README.md says how to serve and test it")


def _pool(args: argparse.Namespace) -> None:
    from .pool.process.rendezvous import SOCKET_ENV, make_private_parent
    from .pool.process.spec import ModelSpec
    from .pool.process.supervisor.server import serve

    service = _service(args.target)
    path = args.socket or os.environ.get(SOCKET_ENV) or service.pool_socket
    if not path:
        raise SystemExit(
            f"utilserve pool: no socket path; give --socket PATH (or set {SOCKET_ENV} or "
            "Service(pool_socket=...)), the same path the web workers get in UTILSERVE_POOL_SOCKET"
        )
    specs = [ModelSpec.of(h.model_cls, h.name, h.workers) for h in service.models if h.pool_kind == "process"]
    if not specs:
        raise SystemExit(
            f"utilserve pool: {args.target} declares no model with the process pool; expected "
            "Service(pool='process'), service.model(..., pool='process') or UTILSERVE_POOL=process"
        )
    make_private_parent(path)
    try:
        serve(os.path.abspath(path), None, specs)
    except OSError as exc:
        raise SystemExit(f"utilserve pool: {exc}") from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="utilserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="serve TARGET with its backend's development server")
    run.add_argument("target", metavar="TARGET", help="module:service")
    run.add_argument("--backend", help="override the service's backend (flask, starlette, ...)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--reload", action="store_true", help="restart when a Python file changes (development)")
    run.add_argument(
        "--reload-dir",
        action="append",
        metavar="DIR",
        help="with --reload, watch DIR (repeatable; default: the current directory)",
    )
    run.set_defaults(func=_run)

    openapi = commands.add_parser("openapi", help="print TARGET's OpenAPI 3.1 document")
    openapi.add_argument("target", metavar="TARGET", help="module:service")
    openapi.set_defaults(func=_openapi)

    debug = commands.add_parser("debug", help="setup, predict one input and teardown MODEL_TARGET, with no server")
    debug.add_argument("target", metavar="MODEL_TARGET", help="module:ModelClass")
    debug.add_argument("--input", required=True, help="the Input as JSON")
    debug.set_defaults(func=_debug)

    create = commands.add_parser("create", help="write a new project NAME: a service, tests, deploy/ and a README")
    create.add_argument("name", metavar="NAME", help="the project and its package: a lowercase Python identifier")
    create.add_argument("--backend", choices=BACKENDS, default="starlette", help="web framework (default: starlette)")
    create.add_argument("--model", action="store_true", help="add a small batched model served at a route")
    create.set_defaults(func=_create)

    pool = commands.add_parser("pool", help="run the process pool of TARGET's models in the foreground (a sidecar)")
    pool.add_argument("target", metavar="TARGET", help="module:service")
    pool.add_argument(
        "--socket", help="Unix socket to listen on (default: $UTILSERVE_POOL_SOCKET, else the service's pool_socket)"
    )
    pool.set_defaults(func=_pool)

    args = parser.parse_args(argv)
    args.func(args)
