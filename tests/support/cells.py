"""The conformance matrix: each backend under its real server. A new cell is one line."""

from __future__ import annotations

from .servers import Cell

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
]


def cell_named(name: str) -> Cell:
    """The matrix's cell called ``name``."""
    return {c.name: c for c in CELLS}[name]
