"""The docs page and one of its assets over real HTTP on every cell of the matrix: GET, HEAD, 304 and ``..``."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from ..support.cells import CELLS
from ..support.servers import Cell, Server, request, serve

APP = "tests.apps.documented:app"
ASSET = "/api/docs/assets/swagger-ui.css"


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_the_docs_page_and_its_assets_are_served(cell: Cell, running: Callable[[Server], Server]) -> None:
    server = running(serve(cell, APP))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/api/docs")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert '"docs/assets/swagger-ui-bundle.js"' in page.text and 'url: "openapi.json"' in page.text
        assert client.get("/api/openapi.json").json()["info"]["title"] == "documented"

        css = client.get(ASSET)
        assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
        assert b".swagger-ui" in css.content and int(css.headers["content-length"]) == len(css.content)
        etag = css.headers["etag"]
        assert css.headers["cache-control"] == "no-cache"

        head = client.head(ASSET)
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag

        unchanged = client.get(ASSET, headers={"if-none-match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag

    for path in ("/api/docs/assets/../__init__.py", "/api/docs/assets/..%2f__init__.py", "/api/docs/assets/%2e%2e/x"):
        status, body = request(server.port, "GET", path)
        assert status in (400, 404) and b"swagger_ui_path" not in body, (path, status, body[:200])
