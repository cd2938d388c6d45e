"""CORS rules, in process, on both the sync and the async request path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from utilserve import API, CORS, Request, Response, Service, api

APP = "https://app.example.com"
OTHER = "https://evil.example.net"


class Root(API):
    @api.get("/items/{item_id}")
    def item(self, item_id: int) -> dict:
        return {"id": item_id}

    @api.get
    def varied(self) -> Response:
        return Response({"ok": True}, headers={"Vary": "Accept-Encoding", "access-control-allow-origin": "stale"})

    @api.get
    def boom(self) -> dict:
        raise RuntimeError("boom")


def service(**cors: Any) -> Service:
    return Service(name="cors-test", api=Root, route="/api", production=True, cors=CORS(**cors))


def serve(svc: Service, method: str, path: str, asynchronous: bool, headers: dict[str, str]) -> Response:
    request = Request(method, path, "", headers)
    if asynchronous:
        return asyncio.run(svc.setup().ahandle(request))
    return svc.setup().handle(request)


def cors_headers(response: Response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers if name.lower().startswith("access-control-")}


def preflight(origin: str, method: str = "PUT", headers: str | None = None) -> dict[str, str]:
    sent = {"origin": origin, "access-control-request-method": method}
    if headers is not None:
        sent["access-control-request-headers"] = headers
    return sent


PATHS = pytest.mark.parametrize("asynchronous", [False, True], ids=["sync-server", "async-server"])
POLICY: dict[str, Any] = {"origins": [APP], "methods": ["GET", "PUT"], "headers": ["X-Token"], "max_age": 120}


@PATHS
def test_an_allowed_preflight_is_answered_before_routing_with_the_allow_headers_and_a_request_id(
    asynchronous: bool,
) -> None:
    svc, seen = service(**POLICY), []

    @svc.middleware
    def user(request: Request, call_next: Callable[[Request], Response]) -> Response:
        seen.append(request.method)
        return call_next(request)

    for path in ("/api/items/1", "/nowhere"):
        response = serve(svc, "OPTIONS", path, asynchronous, preflight(APP, "PUT", "x-token, Content-Type"))
        assert (response.status, response.body) == (200, b"")
        assert cors_headers(response) == {
            "access-control-allow-origin": APP,
            "access-control-allow-methods": "GET, PUT",
            "access-control-allow-headers": "accept, accept-language, content-language, content-type, x-token",
            "access-control-max-age": "120",
        }
        assert response.header("vary") == "Origin" and response.header("x-request-id")
    assert seen == [], "user middleware never sees a preflight"


@PATHS
@pytest.mark.parametrize(
    ("origin", "method", "headers", "refused"),
    [
        (OTHER, "PUT", None, f"origin '{OTHER}' is not allowed"),
        (APP, "DELETE", None, "method 'DELETE' is not allowed (allowed: GET, PUT)"),
        (APP, "PUT", "x-token, x-secret", "request headers 'x-secret' are not allowed"),
        (
            OTHER,
            "PATCH",
            "x-a,x-b",
            f"origin '{OTHER}' is not allowed; method 'PATCH' is not allowed (allowed: GET, PUT); "
            "request headers 'x-a, x-b' are not allowed",
        ),
    ],
    ids=["origin", "method", "header", "all-three"],
)
def test_a_refused_preflight_is_a_400_in_the_error_contract_naming_what_was_refused_and_allows_nothing(
    asynchronous: bool, origin: str, method: str, headers: str | None, refused: str
) -> None:
    response = serve(service(**POLICY), "OPTIONS", "/api/items/1", asynchronous, preflight(origin, method, headers))
    assert response.status == 400
    assert json.loads(response.body) == {"error": {"status": 400, "message": f"CORS preflight refused: {refused}"}}
    assert cors_headers(response) == {}
    assert response.header("vary") == "Origin"


@PATHS
@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/items/7", 200), ("/api/items/pen", 422), ("/nowhere", 404), ("/api/boom", 500)],
    ids=["ok", "422", "404", "500"],
)
def test_an_allowed_origin_gets_its_origin_back_on_every_response_errors_included(
    asynchronous: bool, path: str, status: int
) -> None:
    response = serve(service(**POLICY), "GET", path, asynchronous, {"origin": APP})
    assert response.status == status
    assert cors_headers(response) == {"access-control-allow-origin": APP}
    assert response.header("vary") == "Origin"


@PATHS
def test_a_disallowed_origin_or_none_gets_no_cors_headers_but_vary_so_caches_keep_them_apart(
    asynchronous: bool,
) -> None:
    svc = service(**POLICY)
    for headers in ({"origin": OTHER}, {}):
        response = serve(svc, "GET", "/api/items/7", asynchronous, headers)
        assert response.status == 200 and cors_headers(response) == {}
        assert response.header("vary") == "Origin"


@PATHS
def test_an_options_request_that_is_no_preflight_goes_to_the_router_and_its_route_is_the_paths(
    asynchronous: bool,
) -> None:
    svc, routes = service(**POLICY), []

    @svc.middleware
    def user(request: Request, call_next: Callable[[Request], Response]) -> Response:
        routes.append(request.route)
        return call_next(request)

    response = serve(svc, "OPTIONS", "/api/items/7", asynchronous, {"origin": APP})
    assert response.status == 405 and response.header("allow") == "GET, HEAD"
    assert cors_headers(response) == {"access-control-allow-origin": APP}
    assert routes == ["/api/items/{item_id}"]


def test_any_origin_answers_star_on_every_response_and_needs_no_vary() -> None:
    svc = service(origins=["*"], expose_headers=["X-Request-ID"])
    for headers in ({"origin": OTHER}, {}):
        response = serve(svc, "GET", "/api/items/7", False, headers)
        assert cors_headers(response) == {
            "access-control-allow-origin": "*",
            "access-control-expose-headers": "X-Request-ID",
        }
        assert response.header("vary") is None
    answered = serve(svc, "OPTIONS", "/api/items/7", False, preflight(OTHER, "POST", "content-type"))
    assert answered.status == 200
    assert cors_headers(answered)["access-control-allow-origin"] == "*"
    assert cors_headers(answered)["access-control-allow-methods"] == "GET, HEAD, POST"


@PATHS
def test_credentials_echo_the_allowed_origin_and_say_so_on_preflights_and_responses(asynchronous: bool) -> None:
    svc = service(origins=[APP], credentials=True, expose_headers=["X-Request-ID"])
    response = serve(svc, "GET", "/api/items/7", asynchronous, {"origin": APP})
    assert cors_headers(response) == {
        "access-control-allow-origin": APP,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "X-Request-ID",
    }
    answered = serve(svc, "OPTIONS", "/api/items/7", asynchronous, preflight(APP, "GET"))
    assert cors_headers(answered)["access-control-allow-credentials"] == "true"
    assert cors_headers(answered)["access-control-allow-origin"] == APP


def test_origin_regex_must_match_the_whole_origin() -> None:
    svc = service(origin_regex=r"https://[a-z]+\.example\.com")
    allowed = serve(svc, "GET", "/api/items/1", False, {"origin": "https://a.example.com"})
    tricked = serve(svc, "GET", "/api/items/1", False, {"origin": "https://a.example.com.evil.net"})
    assert cors_headers(allowed) == {"access-control-allow-origin": "https://a.example.com"}
    assert cors_headers(tricked) == {}


def test_any_method_and_any_header_mirror_what_the_preflight_asks() -> None:
    svc = service(origins=[APP], methods=["*"], headers=["*"])
    response = serve(svc, "OPTIONS", "/api/items/1", False, preflight(APP, "PATCH", "X-One, x-two"))
    assert response.status == 200
    assert cors_headers(response)["access-control-allow-methods"] == "PATCH"
    assert cors_headers(response)["access-control-allow-headers"] == "x-one, x-two"


def test_the_endpoints_own_vary_is_kept_and_its_stale_allow_origin_replaced() -> None:
    response = serve(service(origins=[APP]), "GET", "/api/varied", False, {"origin": APP})
    assert response.header("vary") == "Accept-Encoding, Origin"
    assert [value for name, value in response.headers if name.lower() == "access-control-allow-origin"] == [APP]


def test_a_user_middlewares_own_answer_carries_the_cors_headers() -> None:
    svc = service(origins=[APP])

    @svc.middleware
    async def deny(request: Request, call_next: Any) -> Response:
        return Response({"denied": True}, status=401)

    response = serve(svc, "GET", "/api/items/1", True, {"origin": APP})
    assert response.status == 401 and cors_headers(response) == {"access-control-allow-origin": APP}


def test_origins_are_compared_as_browsers_send_them() -> None:
    assert CORS(origins=["HTTPS://App.Example.com:8443"]).origins == ("https://app.example.com:8443",)
    assert CORS(origins=[APP], methods=["get", "put"]).methods == ("GET", "PUT")


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"origins": APP}, TypeError, r"CORS origins must be a list of str, got str .* \(wrap it in a list"),
        ({"origins": [APP, 1]}, TypeError, "CORS origins must hold str, got int 1"),
        ({"origins": ["https://app.example.com/"]}, ValueError, r"scheme://host\[:port\] with no path"),
        ({"origins": ["app.example.com"]}, ValueError, "CORS origins must each be"),
        ({}, ValueError, "CORS needs origins"),
        ({"origins": ["*"], "credentials": True}, ValueError, r'origins=\["\*"\] cannot go with credentials=True'),
        ({"origins": [APP], "credentials": "yes"}, TypeError, "CORS credentials must be a bool, got str 'yes'"),
        ({"origins": [APP], "max_age": -1}, ValueError, "CORS max_age must be an int of seconds >= 0, got -1"),
        ({"origins": [APP], "max_age": True}, ValueError, "CORS max_age must be an int"),
        ({"origins": [APP], "methods": "GET"}, TypeError, "CORS methods must be a list of str"),
        ({"origins": [APP], "headers": ["X Token"]}, ValueError, "CORS headers must be HTTP names"),
        ({"origin_regex": "("}, ValueError, "CORS origin_regex is not a valid regular expression"),
        ({"origin_regex": 3}, TypeError, "CORS origin_regex must be a str"),
        (
            {"origins": [APP], "credentials": True, "expose_headers": ["*"]},
            ValueError,
            r'expose_headers=\["\*"\] means nothing',
        ),
    ],
    ids=[
        "bare-origin",
        "non-str-origin",
        "trailing-slash",
        "no-scheme",
        "no-origins",
        "star-with-credentials",
        "credentials-type",
        "negative-max-age",
        "bool-max-age",
        "bare-method",
        "header-with-space",
        "bad-regex",
        "regex-type",
        "expose-star-with-credentials",
    ],
)
def test_arguments_are_checked_with_the_parameter_the_expected_type_and_what_came(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CORS(**arguments)


def test_service_cors_must_be_a_cors() -> None:
    with pytest.raises(TypeError, match=r"Service cors must be a utilserve.CORS or None, got dict"):
        Service(name="x", cors={"origins": [APP]})  # type: ignore[arg-type]
