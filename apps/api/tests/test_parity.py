"""Everything the UI can do, the API can do: every page route and every websocket change frame
is mapped here to the API operations that do the same thing (through the same service). A new
page route without an entry fails ``test_every_page_route_is_mapped``; an entry naming an API
route or method that does not exist fails ``test_every_mapped_operation_exists``."""

from itertools import combinations

import pytest
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, resolve, reverse

from apps.chat import consumers

# UI route (namespace:name) → the API operations (route name, HTTP method) that do its job.
PAGES = {
    "chat:home": [("api:room-list", "GET"), ("api:room-list", "POST")],
    "chat:room_list": [("api:room-list", "GET")],
    "chat:room_create": [("api:room-list", "POST")],
    "chat:sidebar": [("api:room-list", "GET")],  # ?joined=1
    "chat:search": [("api:search", "GET")],
    "chat:room_detail": [("api:room-detail", "GET"), ("api:room-messages", "GET")],
    "chat:room_history": [("api:room-messages", "GET")],  # ?before= / ?after= / ?around=
    "chat:message_send": [("api:room-messages", "POST")],
    "chat:room_join": [("api:room-join", "POST")],
    "chat:room_leave": [("api:room-leave", "POST")],
    "chat:room_notify": [("api:room-membership", "PATCH")],
    "chat:room_read": [("api:room-read", "POST")],
    "chat:room_settings": [("api:room-detail", "PATCH"), ("api:room-members", "GET")],
    "chat:member_add": [("api:room-members", "POST")],
    "chat:member_remove": [("api:room-member", "DELETE")],
    "chat:room_delete": [("api:room-detail", "DELETE")],
    "chat:webhook_create": [("api:room-webhooks", "POST"), ("api:room-webhooks", "GET")],
    "chat:webhook_revoke": [("api:room-webhook", "DELETE")],
    "chat:dm_open": [("api:dm", "POST")],
    "chat:file_thumbnail": [("api:room-messages", "GET")],  # the message's thumbnail_url
    "chat:file": [("api:room-messages", "GET")],  # the message's attachment url
    "profiles:list": [("api:profile-list", "GET")],
    "profiles:edit": [("api:profile-me", "GET"), ("api:profile-me", "PATCH")],
    # The language switch saves profile.language, as PATCH /api/profiles/me/ {"language"} does.
    "set_language": [("api:profile-me", "PATCH")],
    "profiles:bots": [("api:bot-list", "GET"), ("api:bot-list", "POST")],
    "profiles:bot_detail": [("api:bot-detail", "GET"), ("api:bot-detail", "PATCH")],
    "profiles:bot_token_create": [("api:bot-tokens", "POST"), ("api:bot-tokens", "GET")],
    "profiles:bot_token_revoke": [("api:bot-token", "DELETE")],
    "profiles:bot_delete": [("api:bot-detail", "DELETE")],
    "accounts:tokens": [("api:token-list", "GET"), ("api:token-list", "POST")],
    "accounts:token_revoke": [("api:token-detail", "DELETE")],
}

# Routes that are not actions a program needs an API for, and why.
NOT_ACTIONS = {
    # Sign-up, sign-in, password and e-mail management stay in the browser (as in Slack or
    # Zulip): a program authenticates with a token made there, or by POST /api/auth/token/.
    "account_",
    # The browser's report of a Content-Security-Policy violation.
    "csp_report",
    # Incoming webhooks are themselves a machine interface (their own secret URL).
    "webhook_incoming",
}

# Websocket change frames (consumers._CHANGES) → the API operation doing the same change.
FRAMES = {
    "edit": ("api:message-detail", "PATCH"),
    "delete": ("api:message-detail", "DELETE"),
    "react": ("api:message-reactions", "POST"),
    "unreact": ("api:message-reaction", "DELETE"),
}

_SAMPLE_KWARGS = {"pk": 1, "room_pk": 1, "user_id": 1, "token_id": 1, "emoji": "x"}


def _page_routes():
    def walk(resolver, namespace):
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield namespace, pattern.name

    for namespace, name in walk(get_resolver(), None):
        if namespace in ("api", "admin", "djdt"):
            continue
        yield f"{namespace}:{name}" if namespace else name


def _allows(route: str, method: str) -> bool:
    """Does the API route answer ``method``? (Reversed with whichever sample arguments fit.)"""
    for size in range(len(_SAMPLE_KWARGS) + 1):
        for keys in combinations(_SAMPLE_KWARGS, size):
            try:
                url = reverse(route, kwargs={key: _SAMPLE_KWARGS[key] for key in keys})
            except NoReverseMatch:
                continue
            callback = resolve(url).func
            actions = getattr(callback, "actions", None)
            if actions is not None:  # a router route: method → viewset action
                return method.lower() in actions
            view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
            return view_class is not None and hasattr(view_class, method.lower())
    return False


def test_every_page_route_is_mapped():
    missing = [
        route
        for route in _page_routes()
        if route not in PAGES and not any(route.startswith(skip) for skip in NOT_ACTIONS)
    ]
    assert missing == [], f"page routes with no API counterpart listed: {missing}"


@pytest.mark.parametrize("route", sorted(PAGES))
def test_every_mapped_operation_exists(route):
    for api_route, method in PAGES[route]:
        assert _allows(api_route, method), f"{route}: {method} {api_route} does not exist"


def test_every_change_frame_has_an_api_operation():
    assert set(consumers._CHANGES) == set(FRAMES)
    for kind, (api_route, method) in FRAMES.items():
        assert _allows(api_route, method), f"frame {kind}: {method} {api_route} does not exist"
