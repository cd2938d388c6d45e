"""``utilserve create NAME``: a new project from the templates beside this module.

Templates are ``string.Template`` files (``$$`` for a literal ``$``), named
as their output plus ``.tmpl`` so that no tool mistakes them for code.
"""

from __future__ import annotations

import keyword
import re
import sys
from importlib.resources import files
from pathlib import Path
from string import Template

from .. import __version__
from ..backends import BACKENDS

SERVER_KIND = {
    "flask": "wsgi",
    "django": "wsgi",
    "falcon": "wsgi",
    "starlette": "asgi",
    "fastapi": "asgi",
    "sanic": "sanic",
    "tornado": "tornado",
}
"""How each backend is deployed: gunicorn (and uWSGI for WSGI), or the framework's own server."""

WORKER_CLASS = {"wsgi": "gthread", "asgi": "uvicorn_worker.UvicornWorker"}

TAKEN = {
    "utilserve", "tests", "deploy", *BACKENDS,
    "pydantic", "pydantic_settings", "prometheus_client", "pythonjsonlogger", "uvicorn", "gunicorn", "uwsgi",
    "pytest", "httpx", "watchfiles", "opentelemetry", "swagger_ui_bundle",
}  # fmt: skip
"""Names that a project's package would shadow, besides the standard library's."""


class ScaffoldError(ValueError):
    """A project that cannot be created as asked."""


def check_name(name: str) -> None:
    """NAME becomes the package, the project and the distribution: a lowercase identifier that shadows nothing."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"NAME must be a lowercase Python identifier (a-z, 0-9 and _, not starting with a digit, "
            f"not a keyword), as it names the package; got {name!r}"
        )
    if name in TAKEN or name in sys.stdlib_module_names:
        raise ScaffoldError(f"NAME {name!r} would shadow the module of that name; choose another")


def create(name: str, backend: str, model: bool, parent: Path) -> Path:
    """Write project ``name`` into ``parent / name``, which must not exist yet; return its path."""
    check_name(name)
    if backend not in SERVER_KIND:
        raise ScaffoldError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    root = parent / name
    if root.exists() or root.is_symlink():
        raise ScaffoldError(f"{root.resolve()} already exists; choose another NAME or directory")
    kind = SERVER_KIND[backend]
    values = {"name": name, "backend": backend, "version": __version__, "worker_class": WORKER_CLASS.get(kind, "")}
    values["model_layout"] = _render("readme/model.md", values) if model else ""
    values["deploy"] = _render(f"readme/deploy_{kind}.md", values).rstrip("\n")
    values["deploy_extra"] = f'deploy = ["utilserve[gunicorn]>={__version__}"]\n' if kind in WORKER_CLASS else ""
    chosen = _files(name, kind, model)
    root.mkdir(parents=True)
    for target, template in chosen.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render(template, values))
    return root


def _files(name: str, kind: str, model: bool) -> dict[str, str]:
    """Each file of the project, relative to its root, and the template it comes from."""
    chosen = {
        "README.md": "README.md",
        ".gitignore": "gitignore",
        "pyproject.toml": "pyproject.toml",
        f"{name}/__init__.py": "package/__init__.py",
        f"{name}/app.py": "package/app_model.py" if model else "package/app.py",
        "tests/conftest.py": "tests/conftest.py",
        "tests/test_app.py": "tests/test_app.py",
        "deploy/nginx.conf": "deploy/nginx.conf",
    }
    if model:
        chosen |= {f"{name}/model.py": "package/model.py", "tests/test_model.py": "tests/test_model.py"}
    if kind in WORKER_CLASS:
        chosen["deploy/gunicorn.conf.py"] = "deploy/gunicorn.conf.py"
    if kind == "wsgi":
        chosen["deploy/uwsgi.ini"] = "deploy/uwsgi.ini"
    return chosen


def _render(template: str, values: dict[str, str]) -> str:
    text = (files(__name__) / "templates" / f"{template}.tmpl").read_text()
    return Template(text).substitute(values)
