"""OpenAPI 3.1, generated from the compiled routes and their pydantic types."""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, PydanticSchemaGenerationError, TypeAdapter
from pydantic_core import to_jsonable_python

from ..events import MEDIA_TYPE as EVENT_STREAM
from ..events import EventStream
from ..http import NDJSON, Response
from .params import Param, Source, UploadFile, strip_optional
from .routing import Endpoint

REF = "#/components/schemas/{model}"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {
                "status": {"type": "integer"},
                "message": {"type": "string"},
                "detail": {},
            },
        }
    },
}


class _Schemas:
    """Collects named model schemas into components and hands out references."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def of(self, annotation: Any) -> dict[str, Any]:
        base = strip_optional(annotation)
        if base is UploadFile or base is bytes:
            return {"type": "string", "format": "binary"}
        try:
            schema = TypeAdapter(annotation).json_schema(ref_template=REF)
        except PydanticSchemaGenerationError:
            return {}
        self.components.update(schema.pop("$defs", {}))
        if isinstance(base, type) and issubclass(base, BaseModel) and base is annotation:
            self.components[base.__name__] = schema
            return {"$ref": REF.format(model=base.__name__)}
        return schema


def openapi_document(endpoints: Iterable[Endpoint], title: str, version: str, description: str = "") -> dict[str, Any]:
    """The document of ``endpoints``, titled ``title``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        template = endpoint.template.replace(":path}", "}")
        paths.setdefault(template, {})[endpoint.method.lower()] = _operation(endpoint, schemas)
    info = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": {"schemas": schemas.components},
    }


def _operation(endpoint: Endpoint, schemas: _Schemas) -> dict[str, Any]:
    signature = endpoint.signature
    func_name = getattr(endpoint.func, "__name__", "endpoint")
    status, success = _success(endpoint, schemas)
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.tags[0]}.{func_name}.{endpoint.method.lower()}",
        "tags": list(endpoint.tags),
        "responses": {status: success},
    }
    if endpoint.summary:
        operation["summary"] = endpoint.summary
    parameters = [_parameter(p, schemas) for p in signature.plain if p.source is not Source.FILE]
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(signature.params, schemas)
    if body:
        operation["requestBody"] = body
    if signature.params:
        operation["responses"]["422"] = _error("request validation failed")
    operation["responses"]["default"] = _error("error in the utilserve error shape")
    return operation


def _parameter(param: Param, schemas: _Schemas) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": param.wire,
        "in": param.source.value,
        "required": param.source is Source.PATH or param.required,
        "schema": schemas.of(param.annotation),
    }
    if not param.required and param.default is not None:
        spec["schema"] = {"default": to_jsonable_python(param.default, fallback=str), **spec["schema"]}
    if param.many and param.source is Source.QUERY:
        spec["explode"] = True
    return spec


def _request_body(params: list[Param], schemas: _Schemas) -> dict[str, Any] | None:
    files = [p for p in params if p.source is Source.FILE]
    body = [p for p in params if p.source is Source.BODY]
    if files:
        properties = {p.wire: schemas.of(p.annotation) for p in files}
        names = [p.wire for p in files if p.required]
        form = {"type": "object", "properties": properties, "required": names}
        return {"required": bool(names), "content": {"multipart/form-data": {"schema": form}}}
    if not body:
        return None
    if len(body) == 1 and not body[0].named:
        schema = schemas.of(body[0].annotation)
        required = body[0].required
    else:
        schema = {
            "type": "object",
            "properties": {p.wire: schemas.of(p.annotation) for p in body},
            "required": [p.wire for p in body if p.required],
        }
        required = any(p.required for p in body)
    return {"required": required, "content": {"application/json": {"schema": schema}}}


STREAMED = {
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
}
"""Return annotations of a generator endpoint: its body is streamed, an item at a time."""


def _success(endpoint: Endpoint, schemas: _Schemas) -> tuple[str, dict[str, Any]]:
    """The success response and its status key: "2XX" for a returned Response, which picks its own status."""
    returned = typing.get_type_hints(endpoint.func).get("return")
    if returned is Response:
        return "2XX", {"description": "success"}
    status = str(endpoint.status)
    if returned is None or returned is type(None):
        return status, {"description": "success"}
    bodies = (_body(option, schemas) for option in _streamed_options(returned))
    content = {media: {"schema": schema} for media, schema in bodies}
    return status, {"description": "success", "content": content}


def _streamed_options(returned: Any) -> tuple[Any, ...]:
    """The bodies a return annotation stands for: each of a union that holds a stream, else just itself."""
    options = typing.get_args(returned) if typing.get_origin(returned) in (typing.Union, types.UnionType) else ()
    if any(option is EventStream or typing.get_origin(option) in STREAMED for option in options):
        return options
    return (returned,)


def _body(returned: Any, schemas: _Schemas) -> tuple[str, dict[str, Any]]:
    """The media type and schema of a body of this return annotation."""
    if returned is EventStream:
        return EVENT_STREAM, {"type": "string"}
    if typing.get_origin(returned) in STREAMED:
        return _streamed(typing.get_args(returned)[0], schemas)
    if returned is str:
        return "text/plain", {"type": "string"}
    if returned is bytes:
        return "application/octet-stream", {"type": "string", "format": "binary"}
    return "application/json", schemas.of(returned)


def _streamed(item: Any, schemas: _Schemas) -> tuple[str, dict[str, Any]]:
    """A generator endpoint's body: text or bytes as they come, or NDJSON, one line per item of this schema."""
    if item is str:
        return "text/plain", {"type": "string"}
    if item is bytes:
        return "application/octet-stream", {"type": "string", "format": "binary"}
    return NDJSON, schemas.of(item)


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": REF.format(model="Error")}
    return {"description": description, "content": {"application/json": {"schema": schema}}}
