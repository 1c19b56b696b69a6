"""The websocket origin check: scheme, host and port, not the host name alone.

Browsers send cookies with a websocket handshake whatever page opened it, so the ``Origin``
header is the only thing that stops another site — or another port or scheme of this host
(``http://127.0.0.1:<other port>``, ``http://`` next to ``https://``) — from opening a socket as
the user (cross-site websocket hijacking). channels' ``AllowedHostsOriginValidator`` compares
host names only. Here an Origin is accepted when it is exactly the origin the request was made
to — the scope's scheme (``wss`` → ``https``; uvicorn's ``--proxy-headers`` sets it from a
*trusted* proxy's ``X-Forwarded-Proto``; the header itself is never read here) and the
``Host`` header, which must be one of ``ALLOWED_HOSTS`` — or one of ``CSRF_TRUSTED_ORIGINS``
(scheme, host and port; ``https://*.example.com`` matches subdomains, as Django's CSRF check
does). Everything else, including a missing or ``null`` Origin, is refused at the handshake:
the server answers HTTP 403.

One exception: a handshake that authenticates by token (``Authorization: Bearer …``) and
carries no session cookie is a non-browser client — browsers cannot set that header on a
websocket, and without a cookie there is no ambient credential to hijack — so its Origin is
not checked (its Host still is). With a session cookie the Origin rule applies as always
(project/websocket_auth.py)."""

from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from project.websocket_auth import token_client

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, lower-case host without IPv6 brackets, port


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` → a normalised tuple; None for anything else (``null``, paths,
    credentials, other schemes, bad ports)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def _header(scope: dict, name: bytes) -> str | None:
    """The header's value when it is sent exactly once, else None."""
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    if len(values) != 1:
        return None
    try:
        return values[0].decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None


def own_origin(scope: dict) -> Origin | None:
    """The origin this handshake was addressed to, when its Host is one of ALLOWED_HOSTS."""
    host = _header(scope, b"host")
    if host is None:
        return None
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if scope.get("scheme", "ws") in ("wss", "https") else "http"
    return scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]


@lru_cache(maxsize=8)
def _trusted_origins(patterns: tuple[str, ...]) -> tuple[tuple[Origin, bool], ...]:
    """CSRF_TRUSTED_ORIGINS parsed once (per value: tests override the setting), as
    (origin, wildcard) pairs. Django allows "https://*.example.com"; urlsplit cannot parse "*"
    as a host name."""
    parsed = []
    for pattern in patterns:
        wildcard = "://*." in pattern
        origin = parse_origin(pattern.replace("://*.", "://", 1) if wildcard else pattern)
        if origin is not None:
            parsed.append((origin, wildcard))
    return tuple(parsed)


def _trusted(origin: Origin) -> bool:
    scheme, host, port = origin
    for trusted, wildcard in _trusted_origins(tuple(settings.CSRF_TRUSTED_ORIGINS)):
        if trusted[0] != scheme or trusted[2] != port:
            continue
        if host == trusted[1] or (wildcard and is_same_domain(host, "." + trusted[1])):
            return True
    return False


def origin_allowed(scope: dict) -> bool:
    value = _header(scope, b"origin")
    origin = parse_origin(value) if value is not None else None
    if origin is None:
        return False
    own = own_origin(scope)
    if own is None:
        # A Host outside ALLOWED_HOSTS (DNS rebinding, a foreign Host header): refused even
        # for a trusted origin, as Django's HTTP side answers 400.
        return False
    return origin == own or _trusted(origin)


async def refuse_handshake(scope, receive, send, status: int | None = None, text: str = "") -> None:
    """Answer a websocket handshake with an HTTP error, before anything else runs: no
    consumer, no channel layer, no session lookup.

    By default a close before accept, which every server answers with 403. With ``status``
    and the ASGI "websocket.http.response" extension (uvicorn) a real ``status`` response
    instead (uvicorn 0.54's sans-I/O implementation then also logs "ASGI callable returned
    without completing handshake" — no traceback, no 500 — so the frequent 403 keeps the
    quiet close)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client went away first
    if status is not None and "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": text.encode()})
    else:
        await send({"type": "websocket.close"})


class OriginValidator:
    """ASGI middleware for the websocket side: refuse (HTTP 403) unless ``origin_allowed``, and
    answer 404 for a path no route matches (``routes``: the router's URL patterns) — both
    before the session and the user are looked up, and before channels' URLRouter, which
    raises for an unknown path (a 500 and a traceback)."""

    def __init__(self, inner, *, routes=()):
        self.inner = inner
        self.routes = list(routes)

    def _routed(self, scope) -> bool:
        path = scope.get("path", "")[len(scope.get("root_path", "")) :].lstrip("/")
        return any(route.pattern.match(path) for route in self.routes)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            if not (origin_allowed(scope) or (token_client(scope) and own_origin(scope))):
                return await refuse_handshake(scope, receive, send)
            if self.routes and not self._routed(scope):
                return await refuse_handshake(scope, receive, send, 404, "Not found.\n")
        return await self.inner(scope, receive, send)
