"""What every mount-into-an-existing-app test checks of utilserve's side and the native side."""

from __future__ import annotations

import httpx

NOT_FOUND = b'{"error":{"status":404,"message":"no route for /api/nope"}}'


def assert_utilserve_answers_its_paths(client: httpx.Client) -> None:
    """Under the route and at the health paths, utilserve answers with its own contract."""
    assert client.get("/api/nope").content == NOT_FOUND
    wrong = client.delete("/api/hello")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def assert_native_answers_elsewhere(client: httpx.Client, *paths: str) -> None:
    """Paths outside utilserve's stay the native app's: its 404, not utilserve's error body."""
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b'"error":{"status"' not in response.content, (path, response.content)
