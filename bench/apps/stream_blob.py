"""A generator endpoint for ``bench.stream --slow-readers``: ``GET /blob?size=N&chunk=M``, N bytes in M-byte chunks.

    UTILSERVE_BACKEND=starlette uvicorn bench.apps.stream_blob:app

A sync generator, so that on an async server each chunk is produced on the
handler's threads and on a WSGI server on the request's thread: a reader
that does not keep up should pause it rather than let chunks pile up.
"""

from collections.abc import Iterator

from utilserve import API, Service, api

MIB = 1024 * 1024


class BlobAPI(API):
    @api.get
    def blob(self, size: int = 10 * MIB, chunk: int = 64 * 1024) -> Iterator[bytes]:
        """``size`` bytes, ``chunk`` at a time (the last one shorter)."""
        piece = b"x" * chunk
        for start in range(0, size, chunk):
            yield piece[: min(chunk, size - start)]


service = Service(__name__, name="blob", api=BlobAPI, route="/")
app = service.application()
