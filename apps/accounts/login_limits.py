"""Password-guessing limits that an attacker cannot turn into a lock-out of the owner.

Usernames are public (``/profiles/``), so a limit keyed by username alone lets anyone keep an
account locked. Failures are therefore counted per **client address + username**, and that is
where attempts are refused. The counters, per fixed window of ``window`` seconds:

- ``per_address_username`` failures from one address on one username: past it, that address is
  refused for that username (even with the right password, or guessing would go on) until the
  window ends. Other addresses, and other usernames from that address, are not affected.
- ``per_address`` failures from one address over all usernames (password spraying): past it the
  address is refused for every username.
- ``per_username`` failures on one username from all addresses: past it the username is *under
  attack* and each address gets only ``per_address_username_under_attack`` failures on it per
  window. This slows a guesser spread over many addresses without refusing anyone who has not
  been failing: an address with no failure on the username always has its password checked.

A successful sign-in forgets its address's failures on that username (whoever succeeds knows the
password). Every attempt reserves its slot before the password is checked and gives it back on
success, so parallel guesses from one address cannot overrun the limit. No server-side sleep:
sync views share one thread per process under ASGI, so a delay would stall everyone.

IPv6 addresses are counted per /64 (``PARLEY_LOGIN_LIMITS["ipv6_prefix"]``), as allauth does:
one host usually owns the whole /64.

The same attempt counting serves the HTML login (``AccountAdapter``) and the token endpoint
(``AuthTokenView``), so the two do not add up to twice the guesses.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

DEFAULT_LIMITS = {
    "window": 15 * 60,
    "per_address_username": 5,
    "per_address": 30,
    "per_username": 10,
    "per_address_username_under_attack": 2,
    "ipv6_prefix": 64,
    "reset_per_address_email": 3,
    "reset_per_email": 5,
}


def _clock() -> float:
    """The time source for the windows (patched by tests)."""
    return time.time()


def _limits() -> dict[str, int]:
    return {**DEFAULT_LIMITS, **getattr(settings, "PARLEY_LOGIN_LIMITS", {})}


class LoginThrottled(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"too many failed sign-ins, retry after {retry_after}s")
        self.retry_after = retry_after


def client_address(request: HttpRequest) -> str:
    """The client's address, by the one rule the login, the API throttles and allauth share.

    ``PARLEY_TRUSTED_PROXY_COUNT`` (= ``ALLAUTH_TRUSTED_PROXY_COUNT`` = DRF's ``NUM_PROXIES``)
    0: ``REMOTE_ADDR``, and any X-Forwarded-For a client sends is ignored. N: the Nth entry from
    the right of X-Forwarded-For, the one the outermost of N trusted proxies appended (DRF's
    rule; a shorter header gives its leftmost entry rather than allauth's error). A value that
    is not an IP address falls back to ``REMOTE_ADDR``.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    count = int(getattr(settings, "ALLAUTH_TRUSTED_PROXY_COUNT", 0) or 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if count <= 0 or not forwarded:
        return remote
    entries = [entry.strip() for entry in forwarded.split(",")]
    chosen = entries[-min(count, len(entries))]
    try:
        return str(ipaddress.ip_address(chosen))
    except ValueError:
        return remote


def _counted_address(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        prefix = _limits()["ipv6_prefix"]
        return str(ipaddress.IPv6Network(f"{ip}/{prefix}", strict=False).network_address)
    return str(ip)


def _digest(*parts: str) -> str:
    # Hashed: usernames and addresses do not sit in the cache in clear, and any input is a key.
    joined = "\x00".join(parts)
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


def _count(key: str) -> int:
    value = cache.get(key, 0)
    return value if isinstance(value, int) else 0


def _bump(key: str, timeout: int) -> int:
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr, or the cache is unreachable
        cache.set(key, 1, timeout=timeout)
        return 1


def _unbump(key: str) -> None:
    with contextlib.suppress(ValueError):  # already expired: nothing to give back
        cache.decr(key)


@dataclass
class LoginAttempt:
    """One counted sign-in attempt: report its outcome with ``succeeded()`` or ``failed()``."""

    pair_key: str
    address_key: str
    username_key: str
    timeout: int
    done: bool = False

    def succeeded(self) -> None:
        if not self.done:
            self.done = True
            cache.delete(self.pair_key)

    def failed(self) -> None:
        if not self.done:
            self.done = True
            _bump(self.address_key, self.timeout)
            _bump(self.username_key, self.timeout)


def login_attempt_begin(*, request: HttpRequest, username: str) -> LoginAttempt:
    """Count an attempt to sign in as ``username`` from the request's client address, before
    the password is checked; raise ``LoginThrottled`` if this address may not try now."""
    limits = _limits()
    window = int(limits["window"])
    now = _clock()
    bucket = int(now // window)
    retry_after = max(1, int((bucket + 1) * window - now))
    timeout = window + 1
    address = _counted_address(client_address(request))
    login = username.strip().casefold()

    attempt = LoginAttempt(
        pair_key=f"rl:login:pair:{_digest(address, login)}:{bucket}",
        address_key=f"rl:login:address:{_digest(address)}:{bucket}",
        username_key=f"rl:login:username:{_digest(login)}:{bucket}",
        timeout=timeout,
    )
    if _count(attempt.address_key) >= limits["per_address"]:
        raise LoginThrottled(retry_after)
    under_attack = _count(attempt.username_key) >= limits["per_username"]
    allowed = (
        limits["per_address_username_under_attack"]
        if under_attack
        else limits["per_address_username"]
    )
    if _bump(attempt.pair_key, timeout) > allowed:
        _unbump(attempt.pair_key)
        raise LoginThrottled(retry_after)
    return attempt


def password_reset_begin(*, request: HttpRequest, email: str) -> bool:
    """Count a password-reset request for ``email``; say whether to send the mail.

    Per address + e-mail: past ``reset_per_address_email`` requests per window that address is
    refused (``LoginThrottled``). Per e-mail from all addresses: past ``reset_per_email`` the
    request is answered as usual but no further mail is sent this window: the owner already has
    that many working reset links in their inbox, so nobody is locked out, and the mailbox is
    not flooded from many addresses. (allauth still caps requests per address, 20/min.)"""
    limits = _limits()
    window = int(limits["window"])
    now = _clock()
    bucket = int(now // window)
    timeout = window + 1
    address = _counted_address(client_address(request))
    mailbox = email.strip().casefold()
    pair_key = f"rl:reset:pair:{_digest(address, mailbox)}:{bucket}"
    if _bump(pair_key, timeout) > limits["reset_per_address_email"]:
        raise LoginThrottled(max(1, int((bucket + 1) * window - now)))
    return (
        _bump(f"rl:reset:email:{_digest(mailbox)}:{bucket}", timeout) <= limits["reset_per_email"]
    )
