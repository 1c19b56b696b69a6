"""ASGI entry point.

HTTP goes to Django; websockets pass the origin check (scheme, host and port:
project/ws_origin.py; a token client without a session cookie is exempt), then session or
access-token auth (read once at the handshake, project/websocket_auth.py), then the router; a
path no route matches is answered 404 at the origin check."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Populate the app registry before importing consumers (they import models).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402

from apps.chat import realtime  # noqa: E402
from apps.chat.routing import websocket_urlpatterns  # noqa: E402
from project.http_limits import BodySizeLimitMiddleware  # noqa: E402
from project.websocket_auth import SessionAuthMiddleware  # noqa: E402
from project.ws_origin import OriginValidator  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": BodySizeLimitMiddleware(django_asgi_app),  # project/http_limits.py
        # An unknown path is a 404 (403 on daphne) at the origin check, before the session
        # lookup and before URLRouter (which raises for it).
        "websocket": OriginValidator(
            CookieMiddleware(SessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
            routes=websocket_urlpatterns,
        ),
    }
)


async def application(scope, receive, send):
    # Changes committed in worker threads are published from this loop (apps/chat/realtime.py).
    realtime.bind_loop()
    return await router(scope, receive, send)


# Everything loaded so far (Django, the URL conf, compiled templates: ~150k objects) lives as
# long as the process. Move it out of the cyclic collector's reach: a full collection under
# load then scans only what was created since (measured: the S2 benchmark's p99 went from
# 65-108 ms to 42 ms, its longest pause from 147 ms to 46 ms; see bench/README.md).
gc.collect()
gc.freeze()
