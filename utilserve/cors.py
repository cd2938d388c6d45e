"""CORS: which other origins' pages may call the service from a browser, answered in the core on every backend.

``Service(cors=CORS(...))`` puts one built-in layer right after the
observing one, so a preflight gets its request id and is counted, yet is
answered before routing (an ``OPTIONS`` is never the router's 405) and
before any user middleware. Behaviour follows Starlette's CORSMiddleware,
with two differences that keep browsers and caches honest: ``"*"`` with
``credentials`` is refused rather than turned into "echo any origin", and
``Vary: Origin`` goes on every response whose CORS headers depend on the
origin, not only on those that carried one, so a shared cache never hands
one origin's answer to another.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .errors import HTTPError
from .http import Request, Response
from .middleware import Middleware

ANY = "*"
SAFE_METHODS = ("GET", "HEAD", "POST")
"""The CORS-safelisted methods, the default: a page may send them without a preflight anyway."""
SAFELISTED_HEADERS = ("accept", "accept-language", "content-language", "content-type")
"""Always allowed in a preflight, as Starlette does; ``content-type`` among them so that JSON bodies pass."""

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#@\s]+")
_SHOWN = 200
"""At most this many characters of a client's value go back in a refusal's message."""


@dataclass(frozen=True)
class CORS:
    """The cross-origin policy: ``Service(cors=CORS(origins=["https://app.example.com"]))``.

    ``origins`` are exact origins (``scheme://host[:port]``, no path) or
    ``"*"`` for any; ``origin_regex`` also allows the origins it matches in
    full. ``methods`` and ``headers`` are what a preflight may ask for
    (``"*"``: any); the safelisted request headers are always allowed.
    ``expose_headers`` are response headers a page's script may read.
    ``credentials`` lets pages send cookies and read the answer; it needs
    explicit origins, since allowing every site to act with a user's cookies
    is exactly what CORS exists to prevent. ``max_age`` is how many seconds
    a browser may cache a preflight's answer.
    """

    origins: Sequence[str] = ()
    origin_regex: str | None = None
    methods: Sequence[str] = SAFE_METHODS
    headers: Sequence[str] = ()
    expose_headers: Sequence[str] = ()
    credentials: bool = False
    max_age: int = 600
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        origins = tuple(_origin(value) for value in _strings("origins", self.origins))
        methods = tuple(value.upper() for value in _tokens("methods", self.methods))
        headers = tuple(value.lower() for value in _tokens("headers", self.headers))
        expose = _tokens("expose_headers", self.expose_headers)
        if not isinstance(self.credentials, bool):
            raise TypeError(
                f"CORS credentials must be a bool, got {type(self.credentials).__name__} {self.credentials!r}"
            )
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0:
            raise ValueError(f"CORS max_age must be an int of seconds >= 0, got {self.max_age!r}")
        if not origins and self.origin_regex is None:
            raise ValueError(
                'CORS needs origins (such as ["https://app.example.com"]) or origin_regex: '
                "without either, no origin is allowed"
            )
        if self.credentials and ANY in origins:
            raise ValueError(
                'CORS origins=["*"] cannot go with credentials=True: any site could then act with your users\' '
                "cookies; list the origins, or give an origin_regex"
            )
        if self.credentials and ANY in expose:
            raise ValueError('CORS expose_headers=["*"] means nothing to browsers with credentials=True: name them')
        object.__setattr__(self, "origins", origins)
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "expose_headers", expose)
        object.__setattr__(self, "_pattern", _regex(self.origin_regex))

    @property
    def any_origin(self) -> bool:
        return ANY in self.origins

    def allows(self, origin: str) -> bool:
        if self.any_origin or origin in self.origins:
            return True
        return self._pattern is not None and self._pattern.fullmatch(origin) is not None


def cors_layer(policy: CORS) -> Middleware:
    """The built-in layer for ``policy``, in both forms, so that it never crosses a thread or a loop."""
    answer = _Answer(policy)

    def sync(request: Request, call_next: Callable[[Request], Response]) -> Response:
        preflight = answer.preflight(request)
        return preflight if preflight is not None else answer.actual(request, call_next(request))

    async def asynchronous(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        preflight = answer.preflight(request)
        return preflight if preflight is not None else answer.actual(request, await call_next(request))

    return Middleware(sync, asynchronous)


class _Answer:
    """The headers ``policy`` adds, worked out once."""

    def __init__(self, policy: CORS) -> None:
        self.policy = policy
        self.varies = not policy.any_origin
        """Whether the headers depend on the request's origin: then caches must key on it."""
        self.any_method = ANY in policy.methods
        self.any_header = ANY in policy.headers
        self.allowed_headers = frozenset((*SAFELISTED_HEADERS, *policy.headers))
        self.allow_headers = ", ".join(sorted(self.allowed_headers - {ANY}))
        self.credentials = [("access-control-allow-credentials", "true")] if policy.credentials else []
        self.expose = (
            [("access-control-expose-headers", ", ".join(policy.expose_headers))] if policy.expose_headers else []
        )

    def preflight(self, request: Request) -> Response | None:
        """The answer to a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``), else None."""
        origin = request.headers.get("origin")
        method = request.headers.get("access-control-request-method")
        if request.method != "OPTIONS" or origin is None or method is None:
            return None
        requested = [
            name.strip().lower() for name in (request.headers.get("access-control-request-headers") or "").split(",")
        ]
        requested = [name for name in requested if name]
        refused = []
        if not self.policy.allows(origin):
            refused.append(f"origin {_shown(origin)} is not allowed")
        if not self.any_method and method not in self.policy.methods:
            refused.append(f"method {_shown(method)} is not allowed (allowed: {', '.join(self.policy.methods)})")
        headers = [name for name in requested if not self.any_header and name not in self.allowed_headers]
        if headers:
            refused.append(f"request headers {_shown(', '.join(headers))} are not allowed")
        if refused:
            return self._vary(Response.error(HTTPError(400, "CORS preflight refused: " + "; ".join(refused))))
        response = Response(b"", 200)
        response.headers += [
            *self._origin(origin),
            *self.credentials,
            ("access-control-allow-methods", method if self.any_method else ", ".join(self.policy.methods)),
            ("access-control-allow-headers", ", ".join(requested) if self.any_header else self.allow_headers),
            ("access-control-max-age", str(self.policy.max_age)),
        ]
        return self._vary(response)

    def actual(self, request: Request, response: Response) -> Response:
        """Any other response, errors included: the allow headers when the origin is allowed, and ``Vary``."""
        origin = request.headers.get("origin")
        if self.policy.any_origin or (origin is not None and self.policy.allows(origin)):
            added = [*self._origin(origin or ANY), *self.credentials, *self.expose]
            names = {name for name, _ in added}
            response.headers = [(name, value) for name, value in response.headers if name.lower() not in names]
            response.headers += added
        return self._vary(response)

    def _origin(self, origin: str) -> list[tuple[str, str]]:
        return [("access-control-allow-origin", ANY if self.policy.any_origin else origin)]

    def _vary(self, response: Response) -> Response:
        """``Vary: Origin`` merged into one field: some native header maps keep one value per name."""
        if not self.varies:
            return response
        vary = response.header("vary")
        if vary is None:
            response.headers.append(("vary", "Origin"))
        elif "origin" not in {part.strip().lower() for part in vary.split(",")} and vary.strip() != ANY:
            response.headers = [(name, value) for name, value in response.headers if name.lower() != "vary"]
            response.headers.append(("vary", f"{vary}, Origin"))
        return response


def _strings(parameter: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        hint = f" (wrap it in a list: [{value!r}])" if isinstance(value, str) else ""
        raise TypeError(f"CORS {parameter} must be a list of str, got {type(value).__name__} {value!r}{hint}")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"CORS {parameter} must hold str, got {type(item).__name__} {item!r}")
    return tuple(value)


def _tokens(parameter: str, value: object) -> tuple[str, ...]:
    names = _strings(parameter, value)
    for name in names:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"CORS {parameter} must be HTTP names (letters, digits, -) or '*', got {name!r}")
    return names


def _origin(value: str) -> str:
    if value == ANY:
        return value
    if not _ORIGIN.fullmatch(value.lower()):
        raise ValueError(
            f"CORS origins must each be '*' or scheme://host[:port] with no path, as browsers send them, got {value!r}"
        )
    return value.lower()


def _regex(pattern: object) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"CORS origin_regex must be a str (a regular expression), got {type(pattern).__name__}")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"CORS origin_regex is not a valid regular expression: {error} in {pattern!r}") from None


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")
