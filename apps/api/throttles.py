"""Throttles for the token endpoint.

Requests are throttled per client address (the ``token`` rate), by the address rule the login
shares (``apps.accounts.login_limits.client_address``). Failed passwords are counted by
``login_limits`` in the view, per address + username: a limit per username alone would let
anyone lock a (public) username out of the API."""

from rest_framework.throttling import ScopedRateThrottle

from apps.accounts.login_limits import client_address


class TokenAddressThrottle(ScopedRateThrottle):
    """The ``token`` rate per client address (or per user when already signed in)."""

    def get_ident(self, request):
        return client_address(request)
