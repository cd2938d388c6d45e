"""utilserve: write a service once, serve it on the web stack you already run."""

from typing import TYPE_CHECKING, Any

from . import api
from .api import API, UploadFile
from .cors import CORS
from .errors import HTTPError
from .events import Event, EventStream
from .http import Request, Response
from .pool import Model, ModelHandle
from .service import Service, current


class _CurrentService:
    """``from utilserve import service``: the Service most recently created in this process."""

    def __getattr__(self, name: str) -> Any:
        return getattr(current(), name)

    def __repr__(self) -> str:
        return "<current utilserve service>"


service = _CurrentService()

if TYPE_CHECKING:
    from .env import Env, EnvError


def __getattr__(name: str) -> Any:
    """``Env`` loads pydantic-settings on first use: the pool's supervisor and model workers never need it."""
    if name in ("Env", "EnvError"):
        from . import env

        return getattr(env, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "API",
    "CORS",
    "Env",
    "EnvError",
    "Event",
    "EventStream",
    "HTTPError",
    "Model",
    "ModelHandle",
    "Request",
    "Response",
    "Service",
    "UploadFile",
    "api",
    "service",
]
