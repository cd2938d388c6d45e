"""The docs page and its assets, in process: links, content types, ETags, HEAD, traversal and the switch."""

from __future__ import annotations

from pathlib import Path

import pytest
import swagger_ui_bundle  # type: ignore[import-untyped]  # ships no type hints

from utilserve import API, Request, Response, Service, api


class Root(API):
    @api.get
    def hello(self, name: str = "world") -> dict:
        return {"message": f"hello {name}"}


def call(service: Service, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Response:
    return service.setup().handle(Request(method, path, "", headers or {}))


@pytest.fixture
def service() -> Service:
    return Service(name="docs <test>", api=Root, route="/api")


def test_the_page_links_its_assets_and_document_relative_to_itself(service: Service) -> None:
    page = call(service, "/api/docs")
    assert page.status == 200 and page.header("content-type") == "text/html; charset=utf-8"
    text = page.body.decode()
    assert '"docs/assets/swagger-ui-bundle.js"' in text and 'url: "openapi.json"' in text
    assert "<title>docs &lt;test&gt; · API docs</title>" in text
    assert "default-src 'self'" in (page.header("content-security-policy") or "")
    slashed = call(service, "/api/docs/").body.decode()
    assert '"assets/swagger-ui-bundle.js"' in slashed and 'url: "../openapi.json"' in slashed
    assert call(service, "/api/openapi.json").status == 200


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
        ("favicon-32x32.png", "image/png"),
    ],
)
def test_assets_come_from_the_package_with_their_type_and_an_etag(service: Service, name: str, media_type: str) -> None:
    found = call(service, f"/api/docs/assets/{name}")
    assert found.status == 200 and found.header("content-type") == media_type
    assert found.body == (Path(str(swagger_ui_bundle.swagger_ui_path)) / name).read_bytes()
    assert found.header("cache-control") == "no-cache" and found.header("x-content-type-options") == "nosniff"
    etag = found.header("etag")
    assert etag and etag.startswith('"')
    for tags in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = call(service, f"/api/docs/assets/{name}", headers={"if-none-match": tags})
        assert again.status == 304 and again.body == b"" and again.header("etag") == etag
    assert call(service, f"/api/docs/assets/{name}", headers={"if-none-match": '"other"'}).status == 200
    head = call(service, f"/api/docs/assets/{name}", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.header("etag") == etag


@pytest.mark.parametrize(
    "path",
    [
        "/api/docs/assets/../../openapi.json",
        "/api/docs/assets/../__init__.py",
        "/api/docs/assets/%2e%2e/__init__.py",
        "/api/docs/assets/..%2f__init__.py",
        "/api/docs/assets/vendor/swagger-ui.css",
        "/api/docs/assets//etc/passwd",
        "/api/docs/assets/index.html",
        "/api/docs/assets/",
        "/api/docs/assets/nothing.js",
    ],
)
def test_nothing_but_the_packages_plain_files_is_served(service: Service, path: str) -> None:
    response = call(service, path)
    assert response.status == 404, path
    assert response.body.startswith(b'{"error":{"status":404,'), response.body


def test_the_docs_stay_out_of_the_openapi_document(service: Service) -> None:
    assert [path for path in service.openapi()["paths"] if "docs" in path] == []


@pytest.mark.parametrize("switch", ["argument", "environment"])
def test_docs_off_takes_down_the_page_and_its_assets(switch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if switch == "environment":
        monkeypatch.setenv("UTILSERVE_DOCS", "0")
        service = Service(name="docs-off", api=Root, route="/api", docs=True)
    else:
        service = Service(name="docs-off", api=Root, route="/api", docs=False)
    assert call(service, "/api/docs").status == 404
    assert call(service, "/api/docs/assets/swagger-ui.css").status == 404
    assert call(service, "/api/hello").status == 200


def test_at_the_root_route_the_page_is_at_slash_docs() -> None:
    service = Service(name="docs-root", api=Root)
    page = call(service, "/docs")
    assert page.status == 200 and '"docs/assets/swagger-ui.css"' in page.body.decode()
    assert call(service, "/docs/assets/swagger-ui.css").status == 200
