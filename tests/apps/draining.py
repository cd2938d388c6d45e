"""Each request holds its model for a second; accepted requests and the shutdown hook are recorded in $MODEL_LOG.

For stopping a server while requests are in flight. The backend and the pool kind come from the environment.
"""

import os

from utilserve import API, Service, api

from ..support.models.log import record
from ..support.models.thread import Hold


class RootAPI(API):
    @api.get
    def hold(self, x: int) -> dict:
        record(event="accepted", x=x)
        return {"y": held.predict({"x": x}).y, "web": os.getpid()}


service = Service(__name__, name="draining", api=RootAPI, route="/api", production=True)
held = service.model(Hold)


@service.on_shutdown
def stopped() -> None:
    record(event="shutdown")


app = service.application()
