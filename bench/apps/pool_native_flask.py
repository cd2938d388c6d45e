"""Plain Flask answering ``POST /double`` at once, with no model: the web stack's own ceiling, for ``bench.shared``."""

from flask import Flask, request

app = Flask("pool_native_flask")


@app.post("/double")
def double() -> dict:
    return {"y": request.get_json()["x"] * 2.0}
