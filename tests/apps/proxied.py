"""What a service behind nginx sees of its client, and streams that hold their second part until the test lets them."""

import time
from collections.abc import Iterator
from pathlib import Path

from utilserve import API, Event, EventStream, Request, Service, api

HOLD_S = 20.0


def wait_for(gate: str) -> bool:
    """Whether the file ``gate`` appeared within HOLD_S."""
    end = time.monotonic() + HOLD_S
    while not Path(gate).exists() and time.monotonic() < end:
        time.sleep(0.01)
    return Path(gate).exists()


class RootAPI(API):
    @api.get
    def client(self, request: Request) -> dict:
        """The address the server gave, the forwarding headers that arrived, and the scheme the server took."""
        return {
            "client": request.client,
            "forwarded_for": request.headers.get("x-forwarded-for"),
            "scheme": request.native.scheme,
        }

    @api.get
    def count(self, gate: str) -> Iterator[str]:
        """ "1", then "2" once ``gate`` exists ("gave up" if it never does)."""
        yield "1\n"
        yield "2\n" if wait_for(gate) else "gave up\n"

    @api.get
    def events(self, gate: str) -> EventStream:
        """An event, then another once ``gate`` exists."""

        def items() -> Iterator[Event]:
            yield Event({"n": 1}, id="1")
            yield Event({"n": 2 if wait_for(gate) else "gave up"}, id="2")

        return EventStream(items())


service = Service(__name__, name="proxied", backend="flask", api=RootAPI, route="/api")
app = service.application()
