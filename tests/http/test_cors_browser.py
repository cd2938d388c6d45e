"""CORS as a real browser enforces it: pages of two origins fetch from the service, one allowed, one not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..support.browser import Browser, pages
from ..support.cells import cell_named
from ..support.servers import Server, serve

APP = "tests.apps.cors:app"
PAGE = {"index.html": '<!doctype html><link rel="icon" href="data:,"><title>a page of another origin</title>'}
FETCH = """
const [url, init, done] = arguments;
fetch(url, init)
  .then(r => r.json().then(body => done({ok: true, status: r.status, body, requestId: r.headers.get("x-request-id")})))
  .catch(error => done({ok: false, error: String(error)}));
"""
PUT = {
    "method": "PUT",
    "headers": {"content-type": "application/json", "x-token": "t"},
    "body": json.dumps({"name": "pen"}),
    "credentials": "include",
}
"""A JSON body and a custom header: the browser sends a preflight first, then the request if it may."""
GET: dict[str, Any] = {}
"""A simple request: no preflight, the browser reads the answer's headers to decide."""


def fetch(browser: Browser, page: str, url: str, init: dict[str, Any]) -> dict[str, Any]:
    browser.driver.get(page + "/index.html")
    result: dict[str, Any] = browser.driver.execute_async_script(FETCH, url, init)
    return result


def cors_errors(browser: Browser) -> list[str]:
    return [
        event["params"]["corsErrorStatus"]["corsError"]
        for event in browser.network()
        if event["method"] == "Network.loadingFailed" and "corsErrorStatus" in event["params"]
    ]


def puts_served(server: Server) -> float:
    families = text_string_to_metric_families(httpx.get(server.url + "/metrics", timeout=10).text)
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "utilserve_requests_total" and sample.labels["method"] == "PUT"
    )


@pytest.mark.parametrize("cell", ["starlette@uvicorn", "flask@waitress"])
def test_an_allowed_origins_fetch_resolves_and_a_disallowed_ones_is_blocked_by_the_browser(
    cell: str, browser: Browser, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    browser.driver.set_script_timeout(20)
    with (
        pages(PAGE, tmp_path / "allowed") as allowed,
        pages(PAGE, tmp_path / "other") as other,
    ):
        server = running(serve(cell_named(cell), APP, env={"CORS_ORIGIN": allowed}))
        url = server.url + "/api/items/7"

        put = fetch(browser, allowed, url, PUT)
        get = fetch(browser, allowed, url, GET)
        assert put["ok"] and (put["status"], put["body"]) == (200, {"id": 7, "name": "pen"}), put
        assert put["requestId"], "X-Request-ID is exposed to the page"
        assert get["ok"] and (get["status"], get["body"]) == (200, {"id": 7}), get
        assert cors_errors(browser) == []

        blocked_put = fetch(browser, other, url, PUT)
        blocked_get = fetch(browser, other, url, GET)
        assert blocked_put == {"ok": False, "error": "TypeError: Failed to fetch"}
        assert blocked_get == {"ok": False, "error": "TypeError: Failed to fetch"}
        assert cors_errors(browser) == ["PreflightMissingAllowOriginHeader", "MissingAllowOriginHeader"]
        assert puts_served(server) == 1, "the refused preflight kept the other origin's PUT from being sent"
