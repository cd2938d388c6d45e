"""Native FastAPI hello-world (serve ``bench.apps.native_fastapi:app`` with uvicorn)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict:
    return {"message": "hello world"}
