"""The utilserve hello-world: ``GET /hello`` -> ``{"message": "hello world"}`` on any backend.

The backend comes from ``UTILSERVE_BACKEND`` (and ``UTILSERVE_ASYNCHRONOUS``
for Django/Falcon).  The endpoint is ``async def`` on async servers and plain
``def`` on WSGI ones (``BENCH_ENDPOINT`` overrides), like the native app it
is compared with.
"""

from __future__ import annotations

import os

from utilserve import API, Service, api

from . import endpoint_kind

_WSGI_ONLY = {"flask"}
_BOTH = {"django", "falcon"}


def _default_kind() -> str:
    backend = os.environ.get("UTILSERVE_BACKEND", "starlette").strip().lower()
    asynchronous = os.environ.get("UTILSERVE_ASYNCHRONOUS", "").strip().lower() in ("1", "true", "yes")
    if backend in _WSGI_ONLY or (backend in _BOTH and not asynchronous):
        return "sync"
    return "async"


if endpoint_kind(_default_kind()) == "async":

    class Root(API):
        @api.get
        async def hello(self) -> dict:
            return {"message": "hello world"}

else:

    class Root(API):  # type: ignore[no-redef]
        @api.get
        def hello(self) -> dict:
            return {"message": "hello world"}


service = Service(name="bench", api=Root, route="/")
app = service.application()

if __name__ == "__main__":
    service.run()
