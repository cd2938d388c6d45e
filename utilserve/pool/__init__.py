"""Model serving: the ``Model`` base class and the handle that reaches its worker pool."""

from .handle import ModelHandle
from .model import Model

__all__ = ["Model", "ModelHandle"]
