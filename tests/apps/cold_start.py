"""A Flask service whose only model takes ``$SETUP_SECONDS`` to load, in the pool that ``$UTILSERVE_POOL`` names."""

from utilserve import Service

from ..support.models.thread import SlowSetup

service = Service(__name__, name="cold-start", backend="flask", production=True)
slow_setup = service.model(SlowSetup, route="/setup")
app = service.application()
