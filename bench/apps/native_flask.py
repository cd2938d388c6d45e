"""Native Flask hello-world (serve ``bench.apps.native_flask:app`` with gunicorn)."""

from flask import Flask

app = Flask("native_hello")


@app.get("/hello")
def hello() -> dict:
    return {"message": "hello world"}
