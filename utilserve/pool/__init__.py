"""Model serving: what a user declares (``Model``), what endpoints call (``ModelHandle``), and the pools behind it.

Here: the batcher, the batch runner and the in-process thread pool, and the
one ``Pool`` interface that every kind implements; ``process/`` holds the
pool shared across a server's worker processes, ``ray/`` the Ray Serve one.
"""

from .base import Pool, PoolOptions
from .handle import ModelHandle
from .model import Model

__all__ = ["Model", "ModelHandle", "Pool", "PoolOptions"]
