"""The endpoints every service has: health probes, its OpenAPI document, and a route per served model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic_core import to_json

from ..errors import unavailable
from ..http import Response
from ..pool import ModelHandle
from .base import API, first_line, get
from .params import Signature
from .routing import Endpoint, path_names

HEALTH_PATHS = ("/livez", "/readyz")
"""At the app root whatever the service route, where orchestrators look for them."""


def builtin_api(
    route: str, ready: Callable[[], bool], models: Sequence[ModelHandle], document: Callable[[], dict[str, Any]]
) -> type[API]:
    """``/livez``, ``/readyz`` (503 until ``ready()``, naming each model's state) and ``{route}/openapi.json``."""
    encoded: list[bytes] = []

    class Builtin(API):
        @get(HEALTH_PATHS[0])
        async def livez(self) -> dict[str, str]:
            return {"status": "ok"}

        @get(HEALTH_PATHS[1])
        async def readyz(self) -> dict[str, str]:
            if not ready():
                raise unavailable("service is not ready", {"models": {h.name: _state(h) for h in models}})
            return {"status": "ready"}

        @get(route.rstrip("/") + "/openapi.json")
        async def openapi(self) -> Response:
            if not encoded:
                encoded.append(to_json(document()))
            return Response.json(encoded[0])

    return Builtin


def model_endpoint(handle: ModelHandle, template: str) -> Endpoint:
    """``POST template``: the model's ``Input`` as the JSON body, its ``Output`` as the answer.

    Async servers await :meth:`ModelHandle.apredict`; sync ones call
    :meth:`ModelHandle.predict`, which answers a blocking caller fastest.
    """

    async def predict(item: Any) -> Any:
        return await handle.apredict(item)

    predict.__annotations__ = {"item": handle.model_cls.Input, "return": handle.model_cls.Output}
    return Endpoint(
        method="POST",
        template=template,
        func=predict,
        signature=Signature(predict, path_names(template)),
        is_async=True,
        summary=first_line(handle.model_cls.__doc__) or f"Run {handle.name}.",
        tags=(handle.name,),
        blocking=handle.predict,
    )


def _state(handle: ModelHandle) -> str:
    if handle.ready:
        return "ready"
    return f"failed: {type(handle.error).__name__}" if handle.error else "loading"
