"""DRF throttles that identify clients by the project's one address rule
(``apps.core.clientaddr.client_key``: trusted proxies, IPv6 per /64), not DRF's ``get_ident``,
which takes a full IPv6 address (a host rotating through its /64 gets a fresh budget per
address) and its own proxy setting.

``UserRateThrottle`` is the project-wide default (``DEFAULT_THROTTLE_CLASSES``): per user, or per
client address for anonymous requests. ``TokenAddressThrottle`` is the token endpoint's
``token`` rate per client address. Failed passwords are counted by ``login_limits`` in that
view, per address + username: a limit per username alone would let anyone lock a (public)
username out of the API."""

from rest_framework import throttling

from apps.core.clientaddr import client_key


class ClientKeyThrottle(throttling.SimpleRateThrottle):
    """Base for every Parley throttle: anonymous clients are keyed by ``client_key``."""

    def get_ident(self, request):
        return client_key(request)


class UserRateThrottle(ClientKeyThrottle, throttling.UserRateThrottle):
    """DRF's ``user`` rate, per user or per client address."""


class TokenAddressThrottle(ClientKeyThrottle, throttling.ScopedRateThrottle):
    """The ``token`` rate per client address (or per user when already signed in)."""
