"""The docs page: Swagger UI from the files of a pip package, so that it works offline and sends nothing elsewhere."""

from __future__ import annotations

import hashlib
import html
import importlib
import json
from functools import cache
from pathlib import Path

from ..errors import HTTPError
from ..http import Response

ASSETS = "assets"
"""The page's assets live at ``{route}/docs/assets/<file>``."""
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".map": "application/json",
    ".png": "image/png",
}
"""The only files served, by suffix; fixed here rather than read from the system's mime table, which varies."""
CACHE = ("cache-control", "no-cache")
"""Asset names carry no version, so the browser revalidates with the ETag: a 304 while the package is unchanged."""
CSP = (
    "content-security-policy",
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'self'",
)
"""The browser itself refuses to fetch anything from another origin, whatever Swagger UI might try."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {document},
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null
}});
</script>
</body>
</html>
"""


def page(title: str, path: str) -> Response:
    """The HTML page at ``path``, which links its assets and the OpenAPI document relative to itself.

    Relative links keep the page working behind a proxy that strips a prefix;
    ``{route}/docs/`` and ``{route}/docs`` resolve them from different bases.
    """
    here = "" if path.endswith("/") else "docs/"
    up = "../" if path.endswith("/") else ""
    body = PAGE.format(
        title=html.escape(f"{title} · API docs"),
        assets=here + ASSETS,
        document=json.dumps(up + "openapi.json"),
    )
    return Response(body.encode(), headers=[CACHE, CSP], media_type="text/html; charset=utf-8")


def asset(name: str, if_none_match: str) -> Response:
    """One file of the package, by its bare name; 404 for anything else, ``..`` and subfolders included."""
    if Path(name).suffix not in MEDIA_TYPES or name not in _names():
        raise HTTPError(404, f"no docs asset {name}")
    body, media_type, etag = _load(name)
    headers = [("etag", etag), CACHE]
    if _matches(if_none_match, etag):
        return Response(b"", status=304, headers=headers)
    return Response(body, headers=[*headers, ("x-content-type-options", "nosniff")], media_type=media_type)


@cache
def _load(name: str) -> tuple[bytes, str, str]:
    """Body, media type and ETag of a file known to be there; read once per process."""
    body = (_directory() / name).read_bytes()
    return body, MEDIA_TYPES[Path(name).suffix], f'"{hashlib.sha256(body).hexdigest()[:32]}"'


@cache
def _names() -> frozenset[str]:
    """The plain files at the top of the package's folder: the only names a request may ask for."""
    return frozenset(entry.name for entry in _directory().iterdir() if entry.is_file())


@cache
def _directory() -> Path:
    return Path(str(importlib.import_module("swagger_ui_bundle").swagger_ui_path))


def _matches(if_none_match: str, etag: str) -> bool:
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
