"""Routing: path templates compiled into a segment tree.

A lookup is one dict probe for static paths and one walk down the tree,
a dict probe per segment, for templated ones: no regex scan over routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import HTTPError
from .params import Signature


@dataclass(slots=True, eq=False)
class Endpoint:
    """One handler bound to one method and path template."""

    method: str
    template: str
    func: Callable[..., Any]
    signature: Signature
    is_async: bool
    status: int = 200
    summary: str | None = None
    tags: tuple[str, ...] = ()
    blocking: Callable[..., Any] | None = None
    """A blocking twin of an async ``func``, which sync servers call instead of running an event loop per thread."""


@dataclass(slots=True, eq=False)
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    param_name: str | None = None
    tail_name: str | None = None
    tail: dict[str, Endpoint] | None = None
    methods: dict[str, Endpoint] | None = None


Match = tuple[dict[str, Endpoint], dict[str, str]]


class Router:
    """Maps (method, path) to an endpoint and its raw path parameters."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Endpoint]] = {}
        self._root = _Node()
        self.endpoints: list[Endpoint] = []

    def add(self, endpoint: Endpoint) -> None:
        segments = split_template(endpoint.template)
        if all(not _is_param(s) for s in segments):
            methods = self._static.setdefault(normalize(endpoint.template), {})
        else:
            methods = self._insert(segments, endpoint.template)
        if endpoint.method in methods:
            raise ValueError(f"duplicate route: {endpoint.method} {endpoint.template}")
        methods[endpoint.method] = endpoint
        self.endpoints.append(endpoint)

    def _insert(self, segments: list[str], template: str) -> dict[str, Endpoint]:
        node = self._root
        for index, segment in enumerate(segments):
            if not _is_param(segment):
                node = node.static.setdefault(segment, _Node())
                continue
            name, _, kind = segment[1:-1].partition(":")
            if kind == "path":
                if index != len(segments) - 1:
                    raise ValueError(f"{template}: a {{{name}:path}} parameter must be the last segment")
                if node.tail_name not in (None, name):
                    raise ValueError(f"{template}: conflicting path parameter {name!r} vs {node.tail_name!r}")
                node.tail_name = name
                node.tail = node.tail if node.tail is not None else {}
                return node.tail
            if kind:
                raise ValueError(f"{template}: unknown parameter kind {kind!r} (only 'path' is supported)")
            if node.param is None:
                node.param, node.param_name = _Node(), name
            elif node.param_name != name:
                raise ValueError(f"{template}: conflicting path parameter {name!r} vs {node.param_name!r}")
            node = node.param
        if node.methods is None:
            node.methods = {}
        return node.methods

    def match(self, path: str) -> Match | None:
        methods = self._static.get(path)
        if methods is None:
            path = normalize(path)
            methods = self._static.get(path)
        if methods is not None:
            return methods, {}
        segments = path.strip("/").split("/")
        return _walk(self._root, segments, 0, {})

    def template(self, path: str) -> str | None:
        """The route template of ``path`` whatever the method, or None when no route has it."""
        found = self.match(path)
        return next(iter(found[0].values())).template if found is not None else None

    def lookup(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]]:
        """The endpoint for this request, or the contract's 404 / 405."""
        found = self.match(path)
        if found is None:
            raise HTTPError(404, f"no route for {path}")
        methods, params = found
        endpoint = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
        if endpoint is None:
            allowed = sorted({*methods, *(("HEAD",) if "GET" in methods else ())})
            raise HTTPError(405, f"method {method} not allowed for {path}", headers={"Allow": ", ".join(allowed)})
        return endpoint, params

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints)


def _walk(node: _Node, segments: list[str], index: int, params: dict[str, str]) -> Match | None:
    if index == len(segments):
        return (node.methods, params) if node.methods else None
    segment = segments[index]
    child = node.static.get(segment)
    if child is not None:
        found = _walk(child, segments, index + 1, params)
        if found is not None:
            return found
    if node.param is not None and segment:
        found = _walk(node.param, segments, index + 1, {**params, node.param_name or "": segment})
        if found is not None:
            return found
    if node.tail is not None:
        return node.tail, {**params, node.tail_name or "": "/".join(segments[index:])}
    return None


def join(*parts: str) -> str:
    """Path parts joined with single slashes, from the root: ``join("/api/", "items")`` is ``/api/items``."""
    return "/" + "/".join(part.strip("/") for part in parts if part.strip("/"))


def path_names(template: str) -> set[str]:
    """The parameter names of a path template: ``{"id", "rest"}`` for ``/a/{id}/{rest:path}``."""
    return {segment[1:-1].partition(":")[0] for segment in split_template(template) if _is_param(segment)}


def split_template(template: str) -> list[str]:
    return [s for s in template.strip("/").split("/") if s] or [""]


def normalize(path: str) -> str:
    """``/a/b/`` and ``/a/b`` are one route; the root is ``/``."""
    return "/" + path.strip("/")


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")
