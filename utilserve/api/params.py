"""Endpoint parameters: where each one comes from, and one validation per request.

A signature is compiled once per endpoint.  Per request, the raw strings of
the path, query, headers and cookies are gathered into one dict and
validated by one generated pydantic model (uploads by another); the JSON
body is validated straight from bytes.  Failures of all are reported
together as one 422.

Lax by default, as in FastAPI.  A strict signature validates the body in
pydantic's strict JSON mode, and the strings as one JSON document in the
same mode: bare where the type is a JSON number or boolean and the text
spells one, quoted otherwise (strict Python mode would refuse an ISO string
for a datetime).  So ``?n=3`` is still 3 while ``?flag=yes`` or ``?n=03`` is
a 422, as ``"yes"`` or ``03`` would be in a strict body.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from enum import Enum, StrEnum
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

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

    def __init__(self, fn: Callable[..., Any], path_names: set[str], strict: bool = False) -> None:
        """``fn`` as it will be called: a bound method, or a function with no ``self``.

        ``strict`` asks for pydantic's strict mode (see the module's note);
        lax leaves each model's own setting alone.
        """
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
        self._texts = [p for p in self.plain if p.source is not Source.FILE]
        self._files = [p for p in self.plain if p.source is Source.FILE]
        self.reads_body = bool(self.body) or bool(self._files) or self.request_arg is not None
        self._strict = strict or None  # None, not False: a model declared strict stays strict
        self._literals = frozenset(p.name for p in self._texts if _spelt_as_literal(p.annotation))
        self._text_model = _plain_model(fn, "params", self._texts) if self._texts else None
        self._file_model = _plain_model(fn, "files", self._files) if self._files else None
        self._body_adapter, self._embed = _body_adapter(fn, self.body)

    def bind(self, request: Request) -> dict[str, Any]:
        """Validate everything the endpoint asks for; raise 400/422 in the contract's shape."""
        errors: list[dict[str, Any]] = []
        values: dict[str, Any] = {}
        if self._text_model is not None:
            try:
                values.update(self._validate_texts(self._text_model, self._gather(request)).__dict__)
            except ValidationError as exc:
                errors.extend(validation_details(exc, self._locate))
        if self._file_model is not None:
            try:
                values.update(self._file_model.model_validate(self._uploads(request)).__dict__)
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
        """The strings of every parameter that is not a file, a list of them where it takes many."""
        raw: dict[str, Any] = {}
        for param in self._texts:
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
            elif source is Source.COOKIE and param.wire in request.cookies:
                raw[param.name] = request.cookies[param.wire]
        return raw

    def _validate_texts(self, model: type[BaseModel], raw: dict[str, Any]) -> BaseModel:
        if self._strict:
            return model.model_validate_json(_as_json(raw, self._literals), strict=True)
        return model.model_validate(raw)

    def _uploads(self, request: Request) -> dict[str, Any]:
        files = _multipart(request)
        return {
            p.name: files[p.wire].read() if strip_optional(p.annotation) is bytes else files[p.wire]
            for p in self._files
            if p.wire in files
        }

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
            value = self._body_adapter.validate_json(data, strict=self._strict)
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


def _spelt_as_literal(annotation: Any) -> bool:
    """Whether JSON writes the values of ``annotation`` (or of its members or items) as numbers or booleans."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _spelt_as_literal(args[0])
    if origin is Literal:
        return any(isinstance(arg, int | float) for arg in args)
    if origin is not None:
        return any(_spelt_as_literal(arg) for arg in args)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return any(isinstance(member.value, int | float) for member in annotation)
    return isinstance(annotation, type) and issubclass(annotation, int | float)


_JSON_LITERAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false")
"""A JSON number or boolean as RFC 8259 writes it: no ``+``, spaces, leading zeros, ``inf`` or ``yes``."""


def _as_json(raw: dict[str, Any], literals: frozenset[str]) -> str:
    """The raw strings as one JSON object; those of ``literals`` bare where they spell a JSON number or boolean."""

    def spell(text: str, literal: bool) -> str:
        return text if literal and _JSON_LITERAL.fullmatch(text) else json.dumps(text)

    fields = []
    for name, found in raw.items():
        literal = name in literals
        value = (
            "[" + ",".join(spell(t, literal) for t in found) + "]" if isinstance(found, list) else spell(found, literal)
        )
        fields.append(f"{json.dumps(name)}:{value}")
    return "{" + ",".join(fields) + "}"


def _field(param: Param) -> tuple[Any, Any]:
    return param.annotation, (... if param.required else param.default)


_PLAIN_CONFIG = ConfigDict(arbitrary_types_allowed=True)


def _plain_model(fn: Callable[..., Any], kind: str, params: list[Param]) -> type[BaseModel]:
    fields: dict[str, Any] = {p.name: _field(p) for p in params}
    return create_model(f"{fn.__qualname__}.{kind}", __config__=_PLAIN_CONFIG, **fields)


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
