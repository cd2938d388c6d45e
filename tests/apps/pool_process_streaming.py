"""A flask service whose streaming model all web workers share; the server's deploy/ file picks ``pool="process"``.

``GET /api/count?tag=T&n=N[&until=PATH]`` streams the model's outputs as NDJSON; ``POST /api/counting``
is the model's own route (events).
"""

from collections.abc import Iterator

from utilserve import API, Service, api

from ..support.models.streaming import Count, Counted, Counting


class RootAPI(API):
    @api.get
    def count(self, tag: str, n: int = 3, until: str = "") -> Iterator[Counted]:
        return counting.stream(Count(tag=tag, n=n, until=until))


service = Service(__name__, name="shared-streams", backend="flask", api=RootAPI, route="/api", production=True)
counting = service.model(Counting, route="/counting")
app = service.application()
