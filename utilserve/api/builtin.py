"""The endpoints every service has: health probes, its OpenAPI document and docs page, and a route per served model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

from pydantic_core import to_json

from ..errors import unavailable
from ..events import MEDIA_TYPE, EventStream
from ..http import NDJSON, Request, Response
from ..pool import ModelHandle
from ..telemetry.metrics import exposition
from ..telemetry.tally import tally
from . import docs
from .base import API, first_line, get
from .params import Header, Signature
from .routing import Endpoint, path_names

HEALTH_PATHS = ("/livez", "/readyz")
"""At the app root whatever the service route, where orchestrators look for them."""
METRICS_PATH = "/metrics"
"""At the app root too, where Prometheus looks by default."""


def builtin_api(
    route: str,
    ready: Callable[[], bool],
    models: Sequence[ModelHandle],
    document: Callable[[], dict[str, Any]],
    with_metrics: bool,
    docs_title: str | None = None,
) -> type[API]:
    """``/livez``, ``/readyz`` (503 until ``ready()``, naming each model's state), ``{route}/openapi.json``,
    ``/metrics`` when metrics are on, and ``{route}/docs`` with its assets when given a ``docs_title``."""
    encoded: list[bytes] = []
    base = route.rstrip("/")

    class Builtin(API):
        @get(HEALTH_PATHS[0])
        async def livez(self) -> dict[str, str]:
            return {"status": "ok"}

        @get(HEALTH_PATHS[1])
        async def readyz(self) -> dict[str, str]:
            if not ready():
                raise unavailable("service is not ready", {"models": {h.name: _state(h) for h in models}})
            return {"status": "ready"}

        @get(base + "/openapi.json")
        async def openapi(self) -> Response:
            if not encoded:
                encoded.append(to_json(document()))
            return Response.json(encoded[0])

        if with_metrics:

            @get(METRICS_PATH)
            def metrics(self) -> Response:
                tally.write()  # this process's latest requests; the other processes write theirs within a moment
                body, media_type = exposition()
                return Response(body, media_type=media_type)

        if docs_title is not None:

            @get(base + "/docs")
            async def docs_page(self, request: Request) -> Response:
                return docs.page(docs_title, request.path)

            @get(base + "/docs/" + docs.ASSETS + "/{name:path}")
            def docs_asset(self, name: str, if_none_match: Annotated[str, Header()] = "") -> Response:
                return docs.asset(name, if_none_match)

    return Builtin


def model_endpoint(handle: ModelHandle, template: str) -> Endpoint:
    """``POST template``: the model's ``Input`` as the JSON body, its ``Output`` as the answer.

    Async servers await :meth:`ModelHandle.apredict`; sync ones call
    :meth:`ModelHandle.predict`, which answers a blocking caller fastest. A
    streaming model answers an event stream, one event per output, or NDJSON
    lines when the client accepts ``application/x-ndjson``.
    """
    if handle.model_cls.streams():
        return _streaming_endpoint(handle, template)

    async def predict(item: Any) -> Any:
        return await handle.apredict(item)

    predict.__annotations__ = {"item": handle.model_cls.Input, "return": handle.model_cls.Output}
    return _endpoint(handle, template, predict, handle.predict)


def _streaming_endpoint(handle: ModelHandle, template: str) -> Endpoint:
    async def stream(item: Any, accept: str = "") -> Any:
        outputs = handle.astream(item)
        return outputs if _wants_lines(accept) else EventStream(outputs)

    def blocking(item: Any, accept: str = "") -> Any:
        outputs = handle.stream(item)
        return outputs if _wants_lines(accept) else EventStream(outputs)

    stream.__annotations__ = {
        "item": handle.model_cls.Input,
        "accept": Annotated[str, Header()],
        "return": EventStream | AsyncIterator[handle.model_cls.Output],  # type: ignore[name-defined]
    }
    return _endpoint(handle, template, stream, blocking)


def _wants_lines(accept: str) -> bool:
    return NDJSON in accept and MEDIA_TYPE not in accept


def _endpoint(handle: ModelHandle, template: str, func: Callable[..., Any], blocking: Callable[..., Any]) -> Endpoint:
    return Endpoint(
        method="POST",
        template=template,
        func=func,
        signature=Signature(func, path_names(template), handle.strict),
        is_async=True,
        summary=first_line(handle.model_cls.__doc__) or f"Run {handle.name}.",
        tags=(handle.name,),
        blocking=blocking,
    )


def _state(handle: ModelHandle) -> str:
    if handle.ready:
        return "ready"
    return f"failed: {type(handle.error).__name__}" if handle.error else "loading"
