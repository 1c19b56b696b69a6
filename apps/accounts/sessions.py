"""When a session ends, what it opened must end too: the revocation events, and the check that
a (session, user) pair is still logged in.

A websocket is authenticated once, at its handshake. So that logging out, a password change,
deactivation, deletion of the user or of the session (admin, ``clearsessions``, by hand) also
ends the sockets already open, every such change sends ``sessions_revoked`` once it has
committed; the chat app publishes it to every server process (apps/chat/signals.py), whose
hub closes the matching local sockets. The channel layer may lose it, so the hub also
re-checks its sockets with ``identities_still_valid`` every ~30 s.

A password change keeps the session that made it (Django's ``update_session_auth_hash``):
that cycles the session key — a new row, and the old row deleted — *after* the user was saved.
Inside a request the revocations are therefore collected and sent when the response is ready
(``SessionRevocationMiddleware``), with the old → new key of the request's session when it is
still logged in as that user with the current password; its socket is kept and learns its new
key. Outside a request (``manage.py changepassword``, a shell) they are sent at once."""

import contextvars
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    user_logged_out,
)
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.db import DatabaseError, transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import Signal, receiver
from django.utils import timezone
from django.utils.crypto import constant_time_compare

__all__ = [
    "SessionRevocationMiddleware",
    "identities_still_valid",
    "revoke_identities",
    "sessions_revoked",
]

logger = logging.getLogger(__name__)

# Sent after commit. Arguments: user_id; sessions — a list of session keys, or None for every
# session of the user; keep — {old key: new key} of a session that stays logged in.
sessions_revoked = Signal()


@dataclass(frozen=True)
class _Revocation:
    user_id: object
    sessions: frozenset[str] | None  # None: all of the user's sessions
    keepable: bool  # False: even the request's own session goes (deactivation, deletion)


# The current request's collected revocations (a list), or None outside a request.
_pending: contextvars.ContextVar[list[_Revocation] | None] = contextvars.ContextVar(
    "parley_pending_revocations", default=None
)


def _revoke(user_id, sessions: Iterable[str] | None, *, keepable: bool) -> None:
    revocation = _Revocation(user_id, None if sessions is None else frozenset(sessions), keepable)

    def committed() -> None:
        pending = _pending.get()
        if pending is None:
            _send([revocation], kept=None)
        else:
            pending.append(revocation)

    # Only what committed is revoked; outside a transaction this runs now.
    transaction.on_commit(committed)


def revoke_identities(user_id, keys: Iterable[str]) -> None:
    """Close the open sockets of these identities of the user (session keys, or access-token
    identities: ``tokens.identity_key``) once the current transaction commits. Nothing is kept."""
    _revoke(user_id, keys, keepable=False)


def _send(revocations: list[_Revocation], kept: tuple[object, str, str] | None) -> None:
    """One signal per user: every session if any revocation says so, else the union."""
    by_user: dict[object, list[_Revocation]] = {}
    for revocation in revocations:
        by_user.setdefault(revocation.user_id, []).append(revocation)
    for user_id, found in by_user.items():
        if any(r.sessions is None for r in found):
            sessions = None
        else:
            sessions = sorted(set().union(*(r.sessions for r in found)))
        keep = {}
        if kept is not None and kept[0] == user_id and all(r.keepable for r in found):
            keep = {kept[1]: kept[2]}
        # Robust: a failing receiver must not turn a logout into a 500; the sockets' periodic
        # re-check closes them anyway.
        results = sessions_revoked.send_robust(
            sender=_Revocation, user_id=user_id, sessions=sessions, keep=keep
        )
        for receiver_, error in results:
            if isinstance(error, Exception):
                logger.error("revocation receiver %r failed", receiver_, exc_info=error)


class SessionRevocationMiddleware:
    """Goes after AuthenticationMiddleware. Sends the request's revocations when its response is
    ready, keeping the request's own session where it is still logged in (see the module).

    Sync and async capable, like the rest of the chain: under ASGI it adds no sync/async switch
    to a request, and the publishing (the channel layer, which may hang with Redis) runs in a
    worker thread, never on the one thread the process's sync views and database share."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        start_key = _start_key(request)
        pending: list[_Revocation] = []
        token = _pending.set(pending)
        try:
            return self.get_response(request)
        finally:
            _pending.reset(token)
            if pending:
                _send(pending, kept=_kept(request, start_key))

    async def __acall__(self, request):
        start_key = _start_key(request)
        pending: list[_Revocation] = []
        # The sync views below run in a copy of this context: they append to this very list.
        token = _pending.set(pending)
        try:
            return await self.get_response(request)
        finally:
            _pending.reset(token)
            if pending:
                kept = await sync_to_async(_kept)(request, start_key)  # the database thread
                await sync_to_async(_send, thread_sensitive=False)(pending, kept=kept)


def _start_key(request) -> str | None:
    # The key from the cookie; reading it does not load the session.
    session = getattr(request, "session", None)
    return session.session_key if session is not None else None


def _kept(request, start_key: str | None) -> tuple[object, str, str] | None:
    try:
        return _still_logged_in(getattr(request, "session", None), start_key)
    except DatabaseError:  # then no session is kept: the safe side
        logger.warning("could not re-check the session; revoking it too", exc_info=True)
        return None


def _still_logged_in(session, start_key: str | None) -> tuple[object, str, str] | None:
    """(user id, key at the start, key now) when the request's session is still logged in as
    a user with that user's current password hash (it called update_session_auth_hash)."""
    if session is None or not start_key:
        return None
    user_id, session_hash = session.get(SESSION_KEY), session.get(HASH_SESSION_KEY)
    if user_id is None or not session_hash or not session.session_key:
        return None
    User = get_user_model()
    user_id = User._meta.pk.to_python(user_id)
    user = User._default_manager.filter(pk=user_id).first()
    if user is None or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return user_id, start_key, session.session_key


# --- the triggers -----------------------------------------------------------------------------


@receiver(user_logged_out, dispatch_uid="accounts.revoke_on_logout")
def _logged_out(sender, request, user, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and key:
        _revoke(user.pk, [key], keepable=False)


@receiver(post_delete, sender=Session, dispatch_uid="accounts.revoke_on_session_delete")
def _session_deleted(sender, instance: Session, **kwargs) -> None:
    if instance.expire_date <= timezone.now():
        return  # already invalid (clearsessions): the periodic re-check closes its sockets
    user_id = instance.get_decoded().get(SESSION_KEY)  # {} when it cannot be decoded
    if user_id is not None:
        _revoke(get_user_model()._meta.pk.to_python(user_id), [instance.session_key], keepable=True)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.user_before_save")
def _user_before_save(sender, instance, update_fields=None, **kwargs) -> None:
    if instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. last_login at every login: no query
    instance._sessions_before = (
        sender._default_manager.filter(pk=instance.pk).values_list("password", "is_active").first()
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.revoke_on_user_save")
def _user_saved(sender, instance, created, **kwargs) -> None:
    before = instance.__dict__.pop("_sessions_before", None)
    if created or before is None:
        return
    password, was_active = before
    if was_active and not instance.is_active:
        _revoke(instance.pk, None, keepable=False)
    elif password != instance.password:
        _revoke(instance.pk, None, keepable=True)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.revoke_on_delete")
def _user_deleted(sender, instance, **kwargs) -> None:
    _revoke(instance.pk, None, keepable=False)


# --- the periodic re-check --------------------------------------------------------------------


# Query parameters per IN (...): under SQLite's limit, and one query each for most processes.
_CHUNK = 900


def _chunks(items: list) -> Iterable[list]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def identities_still_valid(identities: Iterable[tuple[str, object]]) -> tuple[set, dict]:
    """Which of these (session key, user id) pairs are still logged in, by the rules of the
    handshake (channels.auth.get_user): the session exists and has not expired, names that user
    and an allowed backend, its auth hash matches the user's current one, the user is active.

    An access token's socket names its token instead (``tokens.identity_key``): valid while
    the token exists, has not expired and its user is active (one query more, when there are
    such sockets).

    Returns (the valid pairs, {user id: user with profile} for the users still there). Two
    queries per 900 sessions with the database session engine (one per session with another
    engine)."""
    from . import tokens  # tokens imports this module

    identities = set(identities)
    by_token = {}
    for key, user_id in identities:
        token_id = tokens.token_id_of(key)
        if token_id is not None:
            by_token[(token_id, user_id)] = key
    valid_tokens = tokens.valid_token_identities(set(by_token))
    keys = sorted({key for key, _ in identities if key and tokens.token_id_of(key) is None})
    store = import_module(settings.SESSION_ENGINE).SessionStore
    sessions: dict[str, dict] = {}
    if issubclass(store, DatabaseSessionStore):
        decoder, now = store(), timezone.now()
        for chunk in _chunks(keys):
            rows = store.get_model_class().objects.filter(
                session_key__in=chunk, expire_date__gt=now
            )
            sessions.update({row.session_key: decoder.decode(row.session_data) for row in rows})
    else:
        for key in keys:
            data = store(key).load()  # {} when missing or expired
            if data:
                sessions[key] = data
    User = get_user_model()
    users = {}
    for chunk in _chunks(sorted({user_id for _, user_id in identities}, key=str)):
        found = User._default_manager.filter(pk__in=chunk).select_related("profile")
        users.update({user.pk: user for user in found})
    valid = set()
    for (token_id, user_id), key in by_token.items():
        user = users.get(user_id)
        if (token_id, user_id) in valid_tokens and user is not None and user.is_active:
            valid.add((key, user_id))
    for key, user_id in identities:
        data, user = sessions.get(key), users.get(user_id)
        if data is None or user is None or not user.is_active:
            continue
        if data.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
            continue
        if str(data.get(SESSION_KEY)) != str(user_id):
            continue
        session_hash = data.get(HASH_SESSION_KEY)
        if session_hash and constant_time_compare(session_hash, user.get_session_auth_hash()):
            valid.add((key, user_id))
    return valid, users
