"""The API tree: ``API`` classes, endpoint decorators, and compiling a tree into a router."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .params import Signature
from .routing import Endpoint, Router, join, path_names

F = TypeVar("F", bound=Callable[..., Any])

METHODS = ("get", "post", "put", "patch", "delete")
_ROUTES_ATTR = "__utilserve_routes__"


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str | None
    status: int
    summary: str | None


class API:
    """A node of the API tree.

    Endpoints are methods decorated with ``api.get`` & co.; a class
    annotation naming another ``API`` subclass mounts it at ``/<attribute>``.
    One instance per class serves every request, so keep request state in
    parameters (a parameter typed ``Request`` receives the request).
    """


class _Verb:
    """``@api.get``, ``@api.get("/{id}")`` and ``@api.get(status=201)`` all work."""

    def __init__(self, method: str) -> None:
        self.method = method.upper()

    @overload
    def __call__(self, path: F, /) -> F: ...

    @overload
    def __call__(
        self, path: str | None = None, /, *, status: int = 200, summary: str | None = None
    ) -> Callable[[F], F]: ...

    def __call__(
        self, path: str | Callable[..., Any] | None = None, /, *, status: int = 200, summary: str | None = None
    ) -> Any:
        if callable(path):
            return self._mark(path, None, status, summary)
        if path is not None and not isinstance(path, str):
            raise TypeError(f"api.{self.method.lower()}(path) takes a str path template, got {type(path).__name__}")
        return lambda func: self._mark(func, path, status, summary)

    def _mark(self, func: F, path: str | None, status: int, summary: str | None) -> F:
        routes = getattr(func, _ROUTES_ATTR, ())
        setattr(func, _ROUTES_ATTR, (*routes, RouteSpec(self.method, path, status, summary)))
        return func


get, post, put, patch, delete = (_Verb(m) for m in METHODS)


def build_router(root: type[API], prefix: str = "/", router: Router | None = None, strict: bool = False) -> Router:
    """Compile an API class tree into a router, mounted at ``prefix``; ``strict``: pydantic's strict mode."""
    router = router if router is not None else Router()
    _mount(root, join(prefix), router, (root,), strict)
    return router


def _mount(cls: type[API], base: str, router: Router, chain: tuple[type[API], ...], strict: bool) -> None:
    if not (isinstance(cls, type) and issubclass(cls, API)):
        raise TypeError(f"api must be an API subclass, got {cls!r}")
    instance = cls()
    for name, func in _endpoint_functions(cls):
        for spec in getattr(func, _ROUTES_ATTR):
            template = join(base, _own_path(name, spec))
            bound = getattr(instance, name)
            router.add(
                Endpoint(
                    method=spec.method,
                    template=template,
                    func=bound,
                    signature=Signature(bound, path_names(template), strict),
                    is_async=inspect.iscoroutinefunction(func),
                    status=spec.status,
                    summary=spec.summary or first_line(func.__doc__),
                    tags=(cls.__name__,),
                )
            )
    for attribute, child in _children(cls):
        if child in chain:
            raise TypeError(f"{cls.__name__}.{attribute}: {child.__name__} mounts itself (a cycle in the API tree)")
        _mount(child, join(base, attribute), router, (*chain, child), strict)


def _endpoint_functions(cls: type[API]) -> list[tuple[str, Callable[..., Any]]]:
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if callable(value) and hasattr(value, _ROUTES_ATTR):
                found[name] = value
            elif name in found:
                del found[name]
    return list(found.items())


def _children(cls: type[API]) -> list[tuple[str, type[API]]]:
    hints = typing.get_type_hints(cls)
    return [(name, hint) for name, hint in hints.items() if isinstance(hint, type) and issubclass(hint, API)]


def _own_path(name: str, spec: RouteSpec) -> str:
    if spec.path is not None:
        return spec.path
    return "" if name.lower() in METHODS else name


def first_line(doc: str | None) -> str | None:
    """A docstring's first line: an operation's summary."""
    return doc.strip().splitlines()[0] if doc and doc.strip() else None
