"""A flask service whose model all web workers share; the server's deploy/ file picks ``pool="process"``.

``GET /api/work?x=N`` records that this web process accepted the request,
then asks the model with ``os.getpid()`` in the item, so batches show which
web workers they mixed.
"""

import os

from utilserve import API, Service, api

from ..support.models.log import record
from ..support.models.process import Echo, Item


class RootAPI(API):
    @api.get
    def work(self, x: int, hold: str = "", sleep_ms: int = 0, timeout: float = 30) -> dict:
        record(event="accepted", x=x)
        answer = echo.predict(Item(x=x, pid=os.getpid(), hold=hold, sleep_ms=sleep_ms), timeout=timeout)
        return {"x": answer.x, "worker": answer.worker, "web": os.getpid()}


service = Service(__name__, name="shared", backend="flask", api=RootAPI, route="/api", production=True)
echo = service.model(Echo, workers=2)
app = service.application()
