"""The one rule for "which client is this" that every per-address limit uses: allauth's rate
limits (``AccountAdapter.get_client_ip``), the DRF throttles (``apps.api.throttles``), the login
and reset limits (``apps.accounts.login_limits``) and the CSP report endpoint.

``client_address`` picks the address: with ``ALLAUTH_TRUSTED_PROXY_COUNT`` (set from
``PARLEY_TRUSTED_PROXY_COUNT``) 0, ``REMOTE_ADDR``, and any X-Forwarded-For a client sends is
ignored; N, the Nth X-Forwarded-For entry from the right, the one the outermost of N trusted
proxies appended (DRF's rule; a shorter header gives its leftmost entry rather than allauth's
ImproperlyConfigured, i.e. a 500). A value that is not an IP address falls back to
``REMOTE_ADDR``.

``client_key`` is what limits count: an IPv6 address by its network of
``ALLAUTH_RATE_LIMIT_IPV6_PREFIX`` bits (64, as allauth counts: one host usually owns the whole
/64, so counting single addresses lets it rotate around any limit), an IPv4-mapped IPv6 address
as the IPv4 address it is.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's address (see the module docstring); ``""`` if the server gave none."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    count = int(settings.ALLAUTH_TRUSTED_PROXY_COUNT or 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if count <= 0 or not forwarded:
        return remote
    entries = [entry.strip() for entry in forwarded.split(",")]
    chosen = entries[-min(count, len(entries))]
    try:
        return str(ipaddress.ip_address(chosen))
    except ValueError:
        return remote


def address_key(address: str) -> str:
    """``address`` as limits count it: IPv6 grouped by prefix, IPv4-mapped as IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        prefix = int(settings.ALLAUTH_RATE_LIMIT_IPV6_PREFIX)
        return str(ipaddress.IPv6Network(f"{ip}/{prefix}", strict=False).network_address)
    return str(ip)


def client_key(request: HttpRequest) -> str:
    """The key per-address limits count ``request`` under."""
    return address_key(client_address(request))
