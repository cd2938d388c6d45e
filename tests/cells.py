"""The conformance matrix: each backend under its real server. A new cell is one line."""

from .servers import Cell

UVICORN = ("{python}", "-m", "uvicorn", "{app}", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log")
GUNICORN = ("{python}", "-m", "gunicorn", "-b", "127.0.0.1:{port}", "-k", "gthread", "-w", "2", "--threads", "4", "{app}")
UWSGI = ("{bin}/uwsgi", "--http-socket", "127.0.0.1:{port}", "--master", "--processes", "2", "--need-app",
         "--die-on-term", "--disable-logging", "--virtualenv", "{prefix}", "--module", "{app}")

CELLS = [
    Cell("starlette@uvicorn", "starlette", UVICORN),
    Cell("flask@gunicorn", "flask", GUNICORN),
    Cell("flask@uwsgi", "flask", UWSGI),
]
