"""Endpoint parameters: where each one comes from, and one validation per request.

A signature is compiled once per endpoint.  Per request, the raw strings of
the path, query, headers and cookies are gathered into one dict and
validated by one generated pydantic model; the JSON body is validated
straight from bytes.  Failures of both are reported together as one 422.
"""

from __future__ import annotations

import inspect
import io
import typing
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from enum import StrEnum
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)

from ..errors import HTTPError, validation_detail, validation_details
from ..http import Request


class Source(StrEnum):
    PATH = "path"
    QUERY = "query"
    HEADER = "header"
    COOKIE = "cookie"
    BODY = "body"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Marker:
    """Put in ``Annotated[T, ...]`` to say where a parameter comes from."""

    source: Source
    alias: str | None = None


def Header(alias: str | None = None) -> Marker:
    """A request header; by default the parameter name with ``_`` read as ``-``."""
    return Marker(Source.HEADER, alias)


def Cookie(alias: str | None = None) -> Marker:
    return Marker(Source.COOKIE, alias)


def Query(alias: str | None = None) -> Marker:
    return Marker(Source.QUERY, alias)


def Body(alias: str | None = None) -> Marker:
    """The JSON body; with an alias (or beside other body parameters), one key of it."""
    return Marker(Source.BODY, alias)


def File(alias: str | None = None) -> Marker:
    """A multipart upload, kept in memory: annotate as ``bytes`` or ``UploadFile``."""
    return Marker(Source.FILE, alias)


@dataclass(slots=True)
class UploadFile:
    """An uploaded file held in memory (never written to disk)."""

    filename: str | None
    content_type: str
    file: io.BytesIO

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    @property
    def size(self) -> int:
        return len(self.file.getbuffer())


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    wire: str
    source: Source
    annotation: Any
    default: Any
    many: bool
    named: bool

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


_SEQUENCES = (list, tuple, set, frozenset, typing.Sequence, typing.AbstractSet)


class Signature:
    """How to turn a request into the keyword arguments of one endpoint."""

    def __init__(self, fn: Callable[..., Any], path_names: set[str]) -> None:
        """``fn`` as it will be called: a bound method, or a function with no ``self``."""
        hints = typing.get_type_hints(fn, include_extras=True)
        self.request_arg: str | None = None
        self.params: list[Param] = []
        for parameter in inspect.signature(fn).parameters.values():
            annotation = hints.get(parameter.name, str)
            if annotation is Request:
                self.request_arg = parameter.name
                continue
            self.params.append(_classify(fn, parameter, annotation, path_names))
        missing = path_names - {p.name for p in self.params if p.source is Source.PATH}
        if missing:
            raise TypeError(f"{fn.__qualname__}: path parameter(s) {sorted(missing)} have no function argument")
        self.plain = [p for p in self.params if p.source is not Source.BODY]
        self.body = [p for p in self.params if p.source is Source.BODY]
        has_files = any(p.source is Source.FILE for p in self.params)
        self.reads_body = bool(self.body) or has_files or self.request_arg is not None
        self._plain_model = _plain_model(fn, self.plain) if self.plain else None
        self._body_adapter, self._embed = _body_adapter(fn, self.body)

    def bind(self, request: Request) -> dict[str, Any]:
        """Validate everything the endpoint asks for; raise 400/422 in the contract's shape."""
        errors: list[dict[str, Any]] = []
        values: dict[str, Any] = {}
        if self._plain_model is not None:
            try:
                values.update(self._plain_model.model_validate(self._gather(request)).__dict__)
            except ValidationError as exc:
                errors.extend(validation_details(exc, self._locate))
        if self._body_adapter is not None:
            values.update(self._bind_body(request, errors))
        if errors:
            raise HTTPError(422, "request validation failed", detail=errors)
        if self.request_arg:
            values[self.request_arg] = request
        return values

    def _gather(self, request: Request) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        files = _multipart(request) if any(p.source is Source.FILE for p in self.plain) else {}
        for param in self.plain:
            source = param.source
            if source is Source.PATH:
                raw[param.name] = request.path_params[param.wire]
                continue
            if source is Source.QUERY:
                found = request.query.get(param.wire)
                if found is not None:
                    raw[param.name] = found if param.many else found[-1]
            elif source is Source.HEADER:
                value = request.headers.get(param.wire)
                if value is not None:
                    raw[param.name] = [v.strip() for v in value.split(",")] if param.many else value
            elif source is Source.COOKIE:
                if param.wire in request.cookies:
                    raw[param.name] = request.cookies[param.wire]
            elif param.wire in files:
                upload = files[param.wire]
                raw[param.name] = upload.read() if strip_optional(param.annotation) is bytes else upload
        return raw

    def _bind_body(self, request: Request, errors: list[dict[str, Any]]) -> dict[str, Any]:
        assert self._body_adapter is not None
        data = request.body
        if not data.strip():
            if self._embed:
                data = b"{}"
            else:
                param = self.body[0]
                if param.required:
                    errors.append(validation_detail(Source.BODY, param.wire, "Field required", "missing"))
                    return {}
                return {param.name: param.default}
        try:
            value = self._body_adapter.validate_json(data)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise HTTPError(400, f"malformed JSON body: {exc.errors()[0]['msg']}") from None
            errors.extend(validation_details(exc, self._locate_body))
            return {}
        if self._embed:
            fields: dict[str, Any] = value.__dict__
            return fields
        return {self.body[0].name: value}

    def _locate(self, loc: tuple[Any, ...]) -> tuple[Source, str]:
        param = next(p for p in self.plain if p.name == loc[0])
        return param.source, ".".join(str(part) for part in (param.wire, *loc[1:]))

    def _locate_body(self, loc: tuple[Any, ...]) -> tuple[Source, str]:
        if self._embed:
            return Source.BODY, ".".join(str(part) for part in loc)
        return Source.BODY, ".".join(str(part) for part in loc) or self.body[0].wire


def _classify(fn: Callable[..., Any], parameter: inspect.Parameter, annotation: Any, path_names: set[str]) -> Param:
    if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise TypeError(f"{fn.__qualname__}: *args/**kwargs are not endpoint parameters ({parameter.name})")
    base, marker = _split_marker(annotation)
    if marker is None:
        if parameter.name in path_names:
            marker = Marker(Source.PATH)
        elif _is_model(base):
            marker = Marker(Source.BODY)
        else:
            marker = Marker(Source.QUERY)
    if marker.source is Source.PATH and parameter.name not in path_names:
        raise TypeError(f"{fn.__qualname__}: {parameter.name!r} is not in the path template")
    wire = marker.alias or (parameter.name.replace("_", "-") if marker.source is Source.HEADER else parameter.name)
    if marker.source is Source.HEADER:
        wire = wire.lower()
    many = marker.source in (Source.QUERY, Source.HEADER) and _is_sequence(base)
    return Param(parameter.name, wire, marker.source, base, parameter.default, many, marker.alias is not None)


def _split_marker(annotation: Any) -> tuple[Any, Marker | None]:
    if get_origin(annotation) is not Annotated:
        return annotation, None
    base, *metadata = get_args(annotation)
    markers = [m for m in metadata if isinstance(m, Marker)]
    rest = [m for m in metadata if not isinstance(m, Marker)]
    if rest:
        base = Annotated[(base, *rest)]
    return base, markers[-1] if markers else None


def strip_optional(annotation: Any) -> Any:
    """``T`` for ``Optional[T]`` / ``T | None`` (and ``Annotated`` around them); anything else as it is."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        if len(args) == 1:
            return strip_optional(args[0])
    return annotation


def _is_sequence(annotation: Any) -> bool:
    annotation = strip_optional(annotation)
    return (get_origin(annotation) or annotation) in _SEQUENCES


def _is_model(annotation: Any) -> bool:
    annotation = strip_optional(annotation)
    if _is_sequence(annotation):
        args = get_args(annotation)
        annotation = strip_optional(args[0]) if args else None
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field(param: Param) -> tuple[Any, Any]:
    return param.annotation, (... if param.required else param.default)


_PLAIN_CONFIG = ConfigDict(arbitrary_types_allowed=True)


def _plain_model(fn: Callable[..., Any], params: list[Param]) -> type[BaseModel]:
    fields: dict[str, Any] = {p.name: _field(p) for p in params}
    return create_model(f"{fn.__qualname__}.params", __config__=_PLAIN_CONFIG, **fields)


def _body_adapter(fn: Callable[..., Any], params: list[Param]) -> tuple[TypeAdapter[Any] | None, bool]:
    """One unnamed body parameter takes the whole body; otherwise each takes its key."""
    if not params:
        return None, False
    if len(params) == 1 and not params[0].named:
        return TypeAdapter(params[0].annotation), False
    fields: dict[str, Any] = {
        p.name: (p.annotation, Field(... if p.required else p.default, alias=p.wire)) for p in params
    }
    return TypeAdapter(create_model(f"{fn.__qualname__}.body", **fields)), True


def _multipart(request: Request) -> dict[str, UploadFile]:
    """Parse a multipart/form-data body in memory; files are never written to disk."""
    content_type = request.headers.get("content-type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        return {}
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + request.body
    )
    if not message.is_multipart() or message.defects:
        raise HTTPError(400, "malformed multipart/form-data body")
    files: dict[str, UploadFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            files[name] = UploadFile(part.get_filename(), part.get_content_type(), io.BytesIO(data))
    return files
