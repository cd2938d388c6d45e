"""What a pool process needs to host a model: where to import it from, how to batch it, and how to start.

The class itself never crosses a process boundary: model workers import it
by ``module:qualname``, so it must live at the top level of an importable
module (the supervisor and its workers are fresh interpreters, not forks,
started with the import paths of the process that starts them).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from ..model import Model


@dataclass(frozen=True)
class ModelSpec:
    name: str
    target: str
    workers: int
    max_batch_size: int
    max_wait_ms: float
    max_queue: int

    @classmethod
    def of(cls, model_cls: type[Model], name: str, workers: int) -> ModelSpec:
        return cls(
            name=name,
            target=importable_target(model_cls, name),
            workers=workers,
            max_batch_size=model_cls.max_batch_size,
            max_wait_ms=model_cls.max_wait_ms,
            max_queue=model_cls.max_queue,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def importable_target(model_cls: type[Model], name: str) -> str:
    """``module:qualname`` of ``model_cls``, after checking that a fresh interpreter finds the same class.

    ``Input`` and ``Output`` are checked too: items are pickled, and pickle
    finds their classes by the same path.
    """
    for cls in (model_cls, model_cls.Input, model_cls.Output):
        _check_importable(cls, model_cls, name)
    return f"{model_cls.__module__}:{model_cls.__qualname__}"


def import_path_arg() -> str:
    """This process's import paths, made absolute, as JSON for a child's :func:`adopt_import_path`."""
    return json.dumps([os.path.abspath(entry) if entry else os.getcwd() for entry in sys.path])


def adopt_import_path(encoded: str) -> None:
    """Put a starting process's import paths (a JSON list) first, so its models import here too."""
    sys.path[:0] = [entry for entry in json.loads(encoded) if entry not in sys.path]


def import_target(target: str) -> type[Model]:
    """The class ``module:qualname`` names (nested classes included)."""
    found = _resolve(target)
    if not (isinstance(found, type) and issubclass(found, Model)):
        raise TypeError(f"{target} is {found!r}, not a utilserve Model subclass")
    return found


def _check_importable(cls: type, model_cls: type[Model], name: str) -> None:
    where = f"{cls.__module__}:{cls.__qualname__}"
    problem = None
    if cls.__module__ == "__main__":
        problem = "it is defined in __main__, which a model worker cannot import"
    elif "<locals>" in cls.__qualname__:
        problem = "it is defined inside a function"
    else:
        try:
            found = _resolve(where)
        except (ImportError, AttributeError) as exc:
            problem = f"importing it fails ({type(exc).__name__}: {exc})"
        else:
            if found is not cls:
                problem = f"that name refers to {found!r}, a different object (a class built at runtime?)"
    if problem is not None:
        kind = "model" if cls is model_cls else f"{model_cls.__qualname__}'s schema"
        raise TypeError(
            f"model {name}: pool='process' imports the {kind} class by name in separate "
            f"processes, but {where} is not importable: {problem}. Define it at the top "
            f"level of an importable module, or use pool='thread'"
        )


def _resolve(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def python_executable() -> str:
    """The interpreter to start a pool process with: ``sys.executable`` is the server binary under uWSGI."""
    if os.path.basename(sys.executable).startswith("python"):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for name in (f"python{version}", "python3", "python"):
        candidate = os.path.join(sys.prefix, "bin", name)
        if os.access(candidate, os.X_OK):
            return candidate
    return getattr(sys, "_base_executable", sys.executable)
