"""Password-guessing limits that an attacker cannot turn into a lock-out of the owner.

Usernames are public (``/profiles/``), so a limit keyed by username alone lets anyone keep an
account locked. Failures are therefore counted per **client address + username**, and that is
where attempts are refused. The counters, per fixed window of ``window`` seconds
(``settings.PARLEY_LOGIN_LIMITS``):

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
password). An attempt reserves a slot in **all three** counters before the password is checked
and gives them back on success, so parallel guesses count as they start: they can overrun
neither the address + username limit, nor the address limit, nor put a username under attack
later than sequential guesses would. An attempt whose check raises keeps its slots (it counts
as a failure). A refused attempt counts nowhere. No server-side sleep: sync views share one
thread per process under ASGI, so a delay would stall everyone.

Addresses are ``apps.core.clientaddr.client_key`` (trusted proxies, IPv6 per /64), the rule
allauth and the API throttles use too. Counters are ``apps.core.ratelimit``'s.

``authenticate_counted`` is the one entry for a password check: the HTML login
(``AccountAdapter.authenticate``) and the token endpoint (``AuthTokenView``) both go through it,
so the two do not add up to twice the guesses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.http import HttpRequest

from apps.core import ratelimit
from apps.core.clientaddr import client_key
from apps.core.ratelimit import RateLimited, Window

__all__ = ["RateLimited", "authenticate_counted", "password_reset_begin"]

U = TypeVar("U")


def _digest(*parts: str) -> str:
    # Hashed: usernames and addresses do not sit in the cache in clear, and any input is a key.
    joined = "\x00".join(parts)
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


def _reserve(request: HttpRequest, username: str) -> Callable[[], None]:
    """Take this attempt's slot in each counter, or raise ``RateLimited`` (having taken none).
    Returns what to call on success."""
    limits = settings.PARLEY_LOGIN_LIMITS
    window = Window.current(limits["window"])
    address = client_key(request)
    login = username.strip().casefold()
    address_name = f"login:address:{_digest(address)}"
    username_name = f"login:username:{_digest(login)}"
    pair_name = f"login:pair:{_digest(address, login)}"

    taken: list[str] = []

    def give_back() -> None:
        for name in taken:
            ratelimit.unbump(name, window)

    if ratelimit.bump(address_name, window) > limits["per_address"]:
        ratelimit.unbump(address_name, window)
        raise window.limited()
    taken.append(address_name)
    under_attack = ratelimit.bump(username_name, window) > limits["per_username"]
    taken.append(username_name)
    allowed = (
        limits["per_address_username_under_attack"]
        if under_attack
        else limits["per_address_username"]
    )
    if ratelimit.bump(pair_name, window) > allowed:
        ratelimit.unbump(pair_name, window)
        give_back()
        raise window.limited()

    def succeeded() -> None:
        give_back()
        ratelimit.forget(pair_name, window)

    return succeeded


def authenticate_counted(
    *, request: HttpRequest, username: str, check: Callable[[], U | None]
) -> U | None:
    """Check a password for ``username`` under the limits: ``check()`` does the check and
    returns the user, or None for wrong credentials. Raises ``RateLimited`` (with
    ``retry_after``) without calling ``check`` if this address may not try now."""
    succeeded = _reserve(request, username)
    user = check()
    if user is not None:
        succeeded()
    return user


def password_reset_begin(*, request: HttpRequest, email: str) -> bool:
    """Count a password-reset request for ``email``; say whether to send the mail.

    Per address + e-mail: past ``reset_per_address_email`` requests per window that address is
    refused (``RateLimited``). Per e-mail from all addresses: past ``reset_per_email`` the
    request is answered as usual but no further mail is sent this window: the owner already has
    that many working reset links in their inbox, so nobody is locked out, and the mailbox is
    not flooded from many addresses. (allauth still caps requests per address, 20/min.)"""
    limits = settings.PARLEY_LOGIN_LIMITS
    window = Window.current(limits["window"])
    mailbox = email.strip().casefold()
    pair_name = f"reset:pair:{_digest(client_key(request), mailbox)}"
    if ratelimit.bump(pair_name, window) > limits["reset_per_address_email"]:
        raise window.limited()
    return ratelimit.bump(f"reset:email:{_digest(mailbox)}", window) <= limits["reset_per_email"]
