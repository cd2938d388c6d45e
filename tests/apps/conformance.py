"""The service every conformance cell serves; the backend comes from UTILSERVE_BACKEND."""

import asyncio
import time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel

from utilserve import API, HTTPError, Request, Response, Service, UploadFile, api


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class Color(StrEnum):
    red = "red"
    blue = "blue"


class ItemsAPI(API):
    @api.get
    def get(self) -> list[dict]:
        return [{"id": 1}, {"id": 2}]

    @api.post(status=201)
    def post(self, item: Item) -> Item:
        return item

    @api.get("/{item_id}")
    def get_item(self, item_id: int) -> dict:
        return {"id": item_id}

    @api.put("/{item_id}")
    def put_item(self, item_id: int, item: Item) -> dict:
        return {"id": item_id, "item": item}

    @api.patch("/{item_id}")
    async def patch_item(self, item_id: int, name: Annotated[str, api.Body("name")]) -> dict:
        return {"id": item_id, "name": name}

    @api.delete("/{item_id}")
    def delete_item(self, item_id: int) -> Response:
        return Response(status=204)


class InnerAPI(API):
    @api.get
    def ping(self) -> str:
        return "pong"


class NestedAPI(API):
    inner: InnerAPI


class RootAPI(API):
    items: ItemsAPI
    nested: NestedAPI

    @api.get
    def hello(self, name: str = "world") -> dict:
        return {"message": f"hello {name}"}

    @api.get
    async def ahello(self, name: str = "world") -> dict:
        await asyncio.sleep(0)
        return {"message": f"hello {name}"}

    @api.get
    def types(self, i: int, f: float, b: bool, s: str) -> dict:
        return {"i": i, "f": f, "b": b, "s": s}

    @api.get
    def optional(self, n: int | None = None) -> dict:
        return {"n": n}

    @api.get
    def many(self, n: list[int] = []) -> dict:  # noqa: B006 - a default the endpoint never mutates, as users write it
        return {"n": n}

    @api.get
    def choice(self, color: Color, mode: Literal["a", "b"] = "a") -> dict:
        return {"color": color, "mode": mode}

    @api.get
    def header(self, token: Annotated[str, api.Header("X-Token")]) -> dict:
        return {"token": token}

    @api.get
    def underscore(self, x_request_id: Annotated[str, api.Header()]) -> dict:
        return {"id": x_request_id}

    @api.get
    def cookie(self, session: Annotated[str, api.Cookie()]) -> dict:
        return {"session": session}

    @api.get
    def search(self, q: Annotated[str, api.Query("search")]) -> dict:
        return {"q": q}

    @api.post
    async def echo(self, item: Item) -> Item:
        return item

    @api.post
    def add(self, a: Annotated[int, api.Body()], b: Annotated[int, api.Body()]) -> dict:
        return {"sum": a + b}

    @api.post
    def upload(self, file: Annotated[UploadFile, api.File()]) -> dict:
        head = file.read(5).decode(errors="replace")  # any file may come: schemathesis sends PNGs
        return {"filename": file.filename, "size": file.size, "type": file.content_type, "head": head}

    @api.post
    def blob(self, data: Annotated[bytes, api.File("blob")]) -> dict:
        return {"size": len(data)}

    @api.get
    def text(self) -> str:
        return "plain text"

    @api.get
    def binary(self) -> bytes:
        return b"\x00\x01\x02"

    @api.get
    def nothing(self) -> None:
        return None

    @api.get
    def custom(self) -> Response:
        return Response({"ok": True}, status=202, headers={"X-Custom": "yes"})

    @api.get
    def teapot(self) -> dict:
        raise HTTPError(418, "short and stout")

    @api.get
    def conflict(self) -> dict:
        raise HTTPError(409, "already exists", detail={"id": 7})

    @api.get
    def boom(self) -> dict:
        return {"x": 1 / 0}

    @api.get
    async def aboom(self) -> dict:
        raise RuntimeError("async failure")

    @api.get
    def whoami(self, request: Request) -> dict:
        return {"method": request.method, "path": request.path, "query": request.query}

    @api.get
    def sleep(self, seconds: float) -> dict:
        start = time.time()
        time.sleep(seconds)
        return {"start": start, "end": time.time()}

    @api.get("/paths/{a}/{b}")
    def two(self, a: str, b: int) -> dict:
        return {"a": a, "b": b}

    @api.get("/files/{rest:path}")
    def rest(self, rest: str) -> dict:
        return {"rest": rest}


service = Service(
    __name__,
    name="conformance",
    api=RootAPI,
    route="/api",
    production=True,
    max_body_size=64 * 1024,
)
app = service.application()
