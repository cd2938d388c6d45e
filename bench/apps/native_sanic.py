"""Native Sanic hello-world (serve ``bench.apps.native_sanic:app`` with the sanic CLI)."""

from sanic import Sanic
from sanic.response import json

app = Sanic("native_hello")


@app.get("/hello")
async def hello(request):
    return json({"message": "hello world"})
