"""Backend adapters: one small module per web framework.

Each module translates between its framework and the core :class:`Handler`
and provides two functions, the :class:`Adapter` protocol.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from ..handler import Handler

BACKENDS = ("django", "flask", "starlette", "fastapi", "sanic", "tornado", "falcon")

_REQUIREMENTS = {
    "django": "Django",
    "flask": "Flask",
    "starlette": "Starlette",
    "fastapi": "FastAPI",
    "sanic": "Sanic",
    "tornado": "Tornado",
    "falcon": "Falcon",
}


class Adapter(Protocol):
    def application(self, handler: Handler, native: Any | None) -> Any:
        """A native app serving ``handler``: new, or ``native`` with utilserve mounted in it."""

    def run(self, app: Any, handler: Handler, host: str, port: int) -> None:
        """Serve ``app`` with the framework's development server until interrupted."""


def resolve_backend(backend: Any) -> str:
    """The backend name for a name, a framework module, or a native app instance."""
    if isinstance(backend, str):
        name = backend.strip().lower()
    elif isinstance(backend, ModuleType):
        name = backend.__name__.partition(".")[0]
    else:
        name = type(backend).__module__.partition(".")[0]
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return name


def load_adapter(name: str) -> Adapter:
    try:
        importlib.import_module(name)
    except ImportError:
        raise ImportError(f"backend {name!r} needs {_REQUIREMENTS[name]}: pip install 'utilserve[{name}]'") from None
    return cast(Adapter, importlib.import_module(f"{__name__}.{name}"))
