"""utilserve: write a service once, serve it on the web stack you already run."""

from typing import Any

from . import api
from .api import API, HTTPError, UploadFile
from .env import Env, EnvError
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

__version__ = "0.1.0"

__all__ = [
    "API",
    "Env",
    "EnvError",
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
