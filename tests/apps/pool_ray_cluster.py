"""A model that only a cluster's model nodes can run (``model_host``), served by web hosts that join with none."""

from utilserve import Service

from ..support.models.ray import Placed

service = Service(__name__, name="ray-cluster", production=True)
placed = service.model(Placed, route="/placed", workers=2, pool="ray")
app = service.application()
