"""The conformance matrix: each backend under its real server. A new cell is one line."""

from __future__ import annotations

from dataclasses import dataclass

from .servers import Cell


@dataclass(frozen=True)
class ServerAnswer:
    """What a cell's server answers where it does not let utilserve answer as the contract says, and why."""

    status: int | None
    """The status sent; None when the server closes the connection without an answer."""
    reason: str


GUNICORN_PREFIX = ("{python}", "-m", "gunicorn", "-b", "127.0.0.1:{port}")


def gunicorn(workers: int = 2, threads: int = 4) -> tuple[str, ...]:
    """gunicorn with ``workers`` threaded workers of ``threads`` threads each."""
    return (*GUNICORN_PREFIX, "-k", "gthread", "-w", str(workers), "--threads", str(threads), "{app}")


UVICORN = ("{python}", "-m", "uvicorn", "{app}", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log")
GUNICORN = gunicorn()
GUNICORN_UVICORN = (*GUNICORN_PREFIX, "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "{app}")
UWSGI = (
    "{bin}/uwsgi",
    "--http11-socket",
    "127.0.0.1:{port}",
    "--master",
    "--processes",
    "2",
    "--need-app",
    "--die-on-term",
    "--hook-master-start",
    "unix_signal:15 gracefully_kill_them_all",
    "--disable-logging",
    "--virtualenv",
    "{prefix}",
    "--module",
    "{app}",
)
SANIC = (
    "{python}",
    "-m",
    "sanic",
    "{app}",
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
    "--workers",
    "2",
    "--no-access-logs",
)
# Like daphne, it sends no lifespan events: the service starts at its first request.
UVICORN_NO_LIFESPAN = (*UVICORN, "--lifespan", "off")
HYPERCORN = ("{python}", "-m", "hypercorn", "-b", "127.0.0.1:{port}", "-w", "2", "--log-level", "warning", "{app}")
GRANIAN_PREFIX = (
    "{python}",
    "-m",
    "granian",
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
    "--workers",
    "2",
    "--log-level",
    "warning",
)
GRANIAN_ASGI = (*GRANIAN_PREFIX, "--interface", "asgi", "{app}")
# Four blocking threads a worker: above 2 x cores + 1, granian warns.
GRANIAN_WSGI = (*GRANIAN_PREFIX, "--interface", "wsgi", "--blocking-threads", "4", "{app}")
# waitress and daphne serve from one process.
WAITRESS = ("{python}", "-m", "waitress", "--listen=127.0.0.1:{port}", "{app}")
DAPHNE = ("{python}", "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "-v", "0", "{app}")
OWN_SERVER = ("{python}", "-m", "utilserve", "run", "{module}:service", "--host", "127.0.0.1", "--port", "{port}")
ASGI = (("UTILSERVE_ASYNCHRONOUS", "1"),)
WSGI = (("UTILSERVE_ASYNCHRONOUS", "0"),)

CELLS = [
    Cell("starlette@uvicorn", "starlette", UVICORN),
    Cell("fastapi@uvicorn", "fastapi", UVICORN),
    Cell("django-asgi@uvicorn", "django", UVICORN, ASGI),
    Cell("falcon-asgi@uvicorn", "falcon", UVICORN, ASGI),
    Cell("starlette@gunicorn-uvicorn", "starlette", GUNICORN_UVICORN),
    Cell("flask@gunicorn", "flask", GUNICORN),
    Cell("flask@uwsgi", "flask", UWSGI),
    Cell("django-wsgi@gunicorn", "django", GUNICORN, WSGI),
    Cell("django-wsgi@uwsgi", "django", UWSGI, WSGI),
    Cell("falcon-wsgi@gunicorn", "falcon", GUNICORN, WSGI),
    Cell("sanic@sanic", "sanic", SANIC),
    Cell("tornado@tornado", "tornado", OWN_SERVER),
    Cell("starlette@uvicorn-no-lifespan", "starlette", UVICORN_NO_LIFESPAN),
    Cell("starlette@hypercorn", "starlette", HYPERCORN),
    Cell("django-asgi@daphne", "django", DAPHNE, ASGI),
    Cell("fastapi@granian-asgi", "fastapi", GRANIAN_ASGI),
    Cell("falcon-wsgi@granian-wsgi", "falcon", GRANIAN_WSGI, WSGI),
    Cell("flask@waitress", "flask", WAITRESS),
]


def cell_named(name: str) -> Cell:
    """The matrix's cell called ``name``."""
    return {c.name: c for c in CELLS}[name]
