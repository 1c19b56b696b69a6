"""Throttles for the token endpoint: password guessing is slowed per client address *and* per
attempted username, so spreading guesses over many addresses does not help against one account."""

import hashlib

from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


class TokenAddressThrottle(ScopedRateThrottle):
    """The ``token`` rate per client address (or per user when already signed in)."""


class TokenUsernameThrottle(SimpleRateThrottle):
    """The ``token`` rate per attempted username, whatever address the attempts come from."""

    scope = "token"

    def get_cache_key(self, request, view):
        data = request.data
        username = data.get("username") if hasattr(data, "get") else None
        if not isinstance(username, str) or not username:
            return None  # nothing to guess against: the serializer will answer 400
        ident = hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_format % {"scope": "token-username", "ident": ident}
