"""Personal access tokens (issue 13): the one module that makes, checks and revokes them.

A token's secret is ``pat_`` + 32 random bytes (URL-safe base64, 43 characters). It is shown
once, when the token is made; the database keeps its SHA-256 (``key_hash``, the lookup key)
and its first characters (``prefix``, to tell tokens apart in a list). A random 256-bit secret
needs neither a salt nor a slow hash: nobody can guess one to test against the hash, and the
lookup by hash compares digests, so its timing says nothing about the secret.

The API (``apps.api.authentication``) and the websocket handshake (``project.websocket_auth``)
read ``Authorization: Bearer <secret>`` — and ``Token <secret>``, DRF's old scheme — with
``secret_from_authorization`` and check it with ``token_lookup``.

Revoking deletes the row. A deleted token (``token_revoke``, the admin, the user's deletion)
closes its open websockets through the session-revocation path (apps/accounts/sessions.py):
a token socket's identity there is ``identity_key(token.pk)`` ("token:<id>") instead of a
session key, so the hubs close it like a logged-out session's, and their periodic re-check
(``identities_still_valid``) closes what a lost event missed — an expired token too."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.core import ratelimit
from apps.core.text import Wording, clean_name

from . import sessions
from .models import AccessToken

__all__ = [
    "BadCredentials",
    "TokenNotFound",
    "expiry_in_days",
    "identity_key",
    "secret_from_authorization",
    "token_authenticate",
    "token_create",
    "token_list_for_user",
    "token_lookup",
    "token_revoke",
]

SECRET_PREFIX = "pat_"
SECRET_BYTES = 32
# "pat_" and 8 random characters: enough to tell a user's tokens apart, useless to a guesser.
PREFIX_LENGTH = len(SECRET_PREFIX) + 8
# A secret longer than this is not one of ours (nor an old 40-character DRF key): no hashing.
SECRET_MAX_LENGTH = 128
# last_used_at is written at most this often per token: a busy bot costs no write per request.
LAST_USED_EVERY = timedelta(minutes=1)
EXPIRY_DAYS_MAX = 3650
# The Authorization schemes read as a token (case-insensitive, RFC 7235).
SCHEMES = (b"bearer", b"token")
IDENTITY_PREFIX = "token:"

_NAME = Wording(
    not_text=gettext_lazy("Enter a name for the token."),
    empty=gettext_lazy("Enter a name for the token."),
    too_long=gettext_lazy("A token name can have at most %(max)d characters."),
    forbidden=gettext_lazy("A token name cannot contain control or invisible characters."),
)


class TokenNotFound(Exception):
    """No such token of this user (another user's token is not found either): 404."""

    def __init__(self, message=None):
        self.message = str(message or _("No such token."))
        super().__init__(self.message)


class BadCredentials(Exception):
    """An ``Authorization`` header with a token scheme but no usable secret."""


def now() -> datetime:
    """The time source of expiry and last use (patched by tests)."""
    return timezone.now()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def identity_key(token_id) -> str:
    """A token socket's identity for the session-revocation path (never a session key: those
    are 32 lower-case letters and digits)."""
    return f"{IDENTITY_PREFIX}{token_id}"


def token_id_of(identity: str | None) -> int | None:
    """The token id of an ``identity_key``, None for anything else (a session key)."""
    if not identity or not identity.startswith(IDENTITY_PREFIX):
        return None
    digits = identity[len(IDENTITY_PREFIX) :]
    return int(digits) if digits.isdigit() else None


def expiry_in_days(days: int) -> datetime:
    return now() + timedelta(days=days)


# --- making, listing, revoking ------------------------------------------------------------


def token_clean(*, name, expires_at: datetime | None) -> tuple[str, datetime | None]:
    """A token's name and expiry as ``token_create`` takes them (ValidationError, code
    ``expires_at`` for the expiry): the API checks them before a password is (auth/token)."""
    name = clean_name(name, max_length=AccessToken.NAME_MAX_LENGTH, wording=_NAME)
    if expires_at is not None:
        moment = now()
        if not isinstance(expires_at, datetime) or timezone.is_naive(expires_at):
            raise ValidationError(_("Give the expiry as a date and time."), code="expires_at")
        if expires_at <= moment:
            raise ValidationError(_("The expiry must be in the future."), code="expires_at")
        if expires_at > moment + timedelta(days=EXPIRY_DAYS_MAX):
            raise ValidationError(
                _("A token can be valid for at most %(days)d days.") % {"days": EXPIRY_DAYS_MAX},
                code="expires_at",
            )
    return name, expires_at


def token_create(*, user, name, expires_at: datetime | None = None) -> tuple[AccessToken, str]:
    """A new token of ``user``; returns it and its secret (the only time the secret exists
    outside the client). ``expires_at``: None for a token that never expires. Refused past
    ``PARLEY_TOKENS_PER_USER_MAX`` tokens and, per user, past ``PARLEY_TOKEN_CREATE_RATE``
    (RateLimited)."""
    name, expires_at = token_clean(name=name, expires_at=expires_at)
    moment = now()
    limit = settings.PARLEY_TOKENS_PER_USER_MAX
    if AccessToken.objects.filter(user=user).count() >= limit:
        raise ValidationError(
            _("You have %(max)d tokens already: revoke one first.") % {"max": limit},
            code="too_many",
        )
    count, window = settings.PARLEY_TOKEN_CREATE_RATE
    try:
        ratelimit.hit(key=f"token-create:{user.pk}", limit=count, window=window)
    except ratelimit.RateLimited as exc:
        exc.message = _("Too many new tokens. Try again in %(s)d s.") % {"s": exc.retry_after}
        raise
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = AccessToken.objects.create(
        user=user,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        key_hash=hash_secret(secret),
        created_at=moment,
        expires_at=expires_at,
    )
    return token, secret


def token_list_for_user(*, user):
    """The user's tokens, newest first (expired ones too, until revoked)."""
    return AccessToken.objects.filter(user=user).order_by("-created_at", "-pk")


def token_get_for_user(*, user, token_id) -> AccessToken:
    token = AccessToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise TokenNotFound
    return token


def token_revoke(*, user, token_id) -> AccessToken:
    """Delete the user's token ``token_id`` (TokenNotFound if it is not theirs); its open
    websockets close with 4401 once this commits (``_token_deleted``)."""
    token = token_get_for_user(user=user, token_id=token_id)
    token.delete()
    return token


@receiver(post_delete, sender=AccessToken, dispatch_uid="accounts.revoke_token_sockets")
def _token_deleted(sender, instance: AccessToken, **kwargs) -> None:
    # Whoever deleted it (token_revoke, the admin, the user's deletion): its sockets end.
    sessions.revoke_identities(instance.user_id, [identity_key(instance.pk)])


# --- checking -------------------------------------------------------------------------------


def secret_from_authorization(header: bytes | str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` (or ``Token <secret>``) header.
    None when the header is absent or of another scheme (Basic …: not ours to judge); raises
    BadCredentials for one of our schemes without exactly one usable credential."""
    if not header:
        return None
    if isinstance(header, str):
        try:
            header = header.encode("latin-1")
        except UnicodeEncodeError:
            raise BadCredentials from None
    parts = header.split()
    if not parts or parts[0].lower() not in SCHEMES:
        return None
    if len(parts) != 2:
        raise BadCredentials
    try:
        secret = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise BadCredentials from None
    if len(secret) > SECRET_MAX_LENGTH:
        raise BadCredentials
    return secret


def token_lookup(secret) -> AccessToken | None:
    """The token (with its user and profile) whose secret this is, if it is valid now: not
    revoked, not expired, its user active. Records the use (at most once a minute). One query,
    and one update when the last use is older than LAST_USED_EVERY."""
    if not isinstance(secret, str) or not secret or len(secret) > SECRET_MAX_LENGTH:
        return None
    # The user's profile in the same query: its bot mark and saved language are read next.
    token = (
        AccessToken.objects.select_related("user", "user__profile")
        .filter(key_hash=hash_secret(secret))
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    moment = now()
    if token.expires_at is not None and token.expires_at <= moment:
        return None
    if token.last_used_at is None or moment - token.last_used_at >= LAST_USED_EVERY:
        # Conditional: of several processes seeing the same stale value, one writes.
        AccessToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=moment - LAST_USED_EVERY)
        ).update(last_used_at=moment)
        token.last_used_at = moment
    return token


def token_authenticate(secret):
    """The active user this secret authenticates, or None (unknown, revoked, expired, or the
    user deactivated)."""
    token = token_lookup(secret)
    return token.user if token is not None else None


def valid_token_identities(identities: set[tuple[int, object]]) -> set[tuple[int, object]]:
    """Which (token id, user id) pairs are still a valid token of that user now (exists, not
    expired). The user's being active is the caller's check. One query."""
    if not identities:
        return set()
    moment = now()
    rows = AccessToken.objects.filter(pk__in=sorted({pk for pk, _ in identities})).values_list(
        "pk", "user_id", "expires_at"
    )
    return {
        (pk, user_id)
        for pk, user_id, expires_at in rows
        if (pk, user_id) in identities and (expires_at is None or expires_at > moment)
    }


def token_expired(*, token_id: int, user_id) -> None:
    """The token's expiry has passed: close its open websockets now (the websocket side calls
    this at the expiry, project/websocket_auth.py), as a revocation would."""
    sessions.revoke_identities(user_id, [identity_key(token_id)])
