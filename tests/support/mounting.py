"""What every mount-into-an-existing-app test checks of utilserve's side and the native side."""

from __future__ import annotations

import httpx

NOT_FOUND = b'{"error":{"status":404,"message":"no route for /api/nope"}}'


def assert_utilserve_answers_its_paths(client: httpx.Client) -> None:
    """Under the route and at the health paths, utilserve answers with its own contract."""
    assert client.get("/api/nope").content == NOT_FOUND
    assert client.get("/api/no%0Ape").content == NOT_FOUND.replace(b"nope", b"no\\npe")  # the route takes any character
    wrong = client.delete("/api/hello")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def assert_unlisted_method_is_utilserve_405(client: httpx.Client) -> None:
    """A method no framework lists (QUERY) gets the contract's 405 under the route, and the connection serves on."""
    wrong = client.request("QUERY", "/api/hello")
    assert wrong.content == b'{"error":{"status":405,"message":"method QUERY not allowed for /api/hello"}}'
    assert wrong.headers["allow"] == "GET, HEAD"
    assert client.get("/livez").json() == {"status": "ok"}


def assert_native_answers_elsewhere(client: httpx.Client, *paths: str) -> None:
    """Paths outside utilserve's stay the native app's: its 404, not utilserve's error body."""
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b'"error":{"status"' not in response.content, (path, response.content)
