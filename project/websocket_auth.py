"""Websocket authentication, paid once per connection instead of once per frame: the session
of the cookie (browsers), or a personal access token in an ``Authorization`` header (bots and
other non-browser clients).

channels' ``AuthMiddlewareStack`` wraps ``send`` in a session-saving shim that runs for every
frame a socket is sent (two lazy-object lookups), for a session a websocket never saves. This
middleware opens the session named by the cookie and resolves the user once, at the handshake,
by the same rules (``channels.auth.get_user``: session key, authentication backend, session
hash), and passes ``send`` through untouched. Identity comes from the session or the token
only.

**Tokens.** ``Authorization: Bearer <token>`` (or DRF's old ``Token <token>``) at the handshake
authenticates by that token alone (apps/accounts/tokens.py): a wrong, expired or revoked one
is an anonymous socket (accepted, then closed with 4401 by the consumer), never a fallback to
a cookie's session. Browsers cannot set that header on a websocket, so such a handshake
without a session cookie is exempt from the Origin check (``token_client``, project/ws_origin.py);
one that also carries a session cookie is not. The socket's identity for the session-revocation
path is ``scope["identity"]`` = ``tokens.identity_key(token.pk)``: revoking the token (or
deactivating its user) closes it with 4401 like a logged-out session's socket, and at the
token's expiry ``_close_at_expiry`` sends that revocation itself."""

import asyncio
import logging
from datetime import datetime
from importlib import import_module

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie

from apps.accounts import tokens

logger = logging.getLogger(__name__)

# At most this long between two looks at the clock while a token socket waits for its token's
# expiry (the wait is the time left, capped): a clock set forward is noticed within it.
EXPIRY_CHECK_SECONDS = 60.0


def _header(scope: dict, name: bytes) -> list[bytes]:
    return [value for key, value in scope.get("headers", ()) if key.lower() == name]


def has_session_cookie(scope: dict) -> bool:
    """Does the handshake carry a session cookie (whatever its value)? Read from the headers:
    the Origin check runs before channels' CookieMiddleware."""
    for value in _header(scope, b"cookie"):
        if settings.SESSION_COOKIE_NAME in parse_cookie(value.decode("latin-1")):
            return True
    return False


def authorization(scope: dict) -> str | None:
    """The token secret of the handshake's ``Authorization`` header: None when there is no
    token header (none, or another scheme), "" for a token header that is not usable (two
    of them, a malformed one)."""
    values = _header(scope, b"authorization")
    if not values:
        return None
    found = []
    for value in values:
        try:
            secret = tokens.secret_from_authorization(value)
        except tokens.BadCredentials:
            secret = ""
        if secret is not None:
            found.append(secret)
    if not found:
        return None
    return found[0] if len(found) == 1 else ""


def token_client(scope: dict) -> bool:
    """A non-browser client authenticating by token: a token ``Authorization`` header and no
    session cookie (the Origin rule protects cookie sessions; this handshake has none)."""
    return authorization(scope) is not None and not has_session_cookie(scope)


class SessionAuthMiddleware:
    """Goes inside channels' ``CookieMiddleware``, which fills ``scope["cookies"]``."""

    def __init__(self, inner):
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        secret = authorization(scope) if scope.get("type") == "websocket" else None
        if secret is None:
            session = self.session_store(scope["cookies"].get(settings.SESSION_COOKIE_NAME))
            scope = {**scope, "session": session}
            scope["user"] = await get_user(scope)
            return await self.inner(scope, receive, send)
        token = await database_sync_to_async(tokens.token_lookup)(secret)
        # A token socket has no session: an empty one, for code that expects the key.
        scope = {**scope, "session": self.session_store(None), "user": AnonymousUser()}
        if token is None:
            return await self.inner(scope, receive, send)
        scope["user"] = token.user
        scope["identity"] = tokens.identity_key(token.pk)
        scope["access_token"] = token.pk
        if token.expires_at is None:
            return await self.inner(scope, receive, send)
        expiry = asyncio.ensure_future(_close_at_expiry(token.pk, token.user_id, token.expires_at))
        try:
            return await self.inner(scope, receive, send)
        finally:
            expiry.cancel()


async def _close_at_expiry(token_id: int, user_id, expires_at: datetime) -> None:
    """Wait for the token's expiry by the clock (``tokens.now``), then revoke its sockets (this
    process's and every other's: the revocation goes through the channel layer, and a lost
    one is caught by the hubs' periodic re-check)."""
    while True:
        left = (expires_at - tokens.now()).total_seconds()
        if left <= 0:
            break
        await asyncio.sleep(min(left, EXPIRY_CHECK_SECONDS))
    try:
        await database_sync_to_async(tokens.token_expired)(token_id=token_id, user_id=user_id)
    except Exception:  # the periodic re-check closes it anyway
        logger.exception("closing the sockets of expired token %s failed", token_id)
