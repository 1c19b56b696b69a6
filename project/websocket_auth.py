"""Session authentication for websockets, paid once per connection instead of once per frame.

channels' ``AuthMiddlewareStack`` wraps ``send`` in a session-saving shim that runs for every
frame a socket is sent (two lazy-object lookups), for a session a websocket never saves. This
middleware opens the session named by the cookie and resolves the user once, at the handshake,
by the same rules (``channels.auth.get_user``: session key, authentication backend, session
hash), and passes ``send`` through untouched. Identity comes from the session only."""

from importlib import import_module

from channels.auth import get_user
from django.conf import settings


class SessionAuthMiddleware:
    """Goes inside channels' ``CookieMiddleware``, which fills ``scope["cookies"]``."""

    def __init__(self, inner):
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        session = self.session_store(scope["cookies"].get(settings.SESSION_COOKIE_NAME))
        scope = {**scope, "session": session}
        scope["user"] = await get_user(scope)
        return await self.inner(scope, receive, send)
