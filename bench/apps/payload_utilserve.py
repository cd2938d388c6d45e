"""utilserve's app of ``bench.overhead --payloads``: ``POST /ingest`` with a ``Payload`` body, any backend."""

import os

from bench.apps.payload_model import Payload
from utilserve import API, Service, api


class SyncRoot(API):
    @api.post
    def ingest(self, payload: Payload) -> dict:
        return {"count": len(payload.entries)}


class AsyncRoot(API):
    @api.post
    async def ingest(self, payload: Payload) -> dict:
        return {"count": len(payload.entries)}


asynchronous = os.environ.get("UTILSERVE_ASYNCHRONOUS", "1") != "0"  # as bench.overhead sets it for WSGI servers
service = Service(name="bench", api=AsyncRoot if asynchronous else SyncRoot, route="/")
app = service.application()
