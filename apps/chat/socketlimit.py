"""At most ``PARLEY_WS_MAX_PER_USER`` open websockets per user, across every server process.

With the Redis cache each user has a sorted set: member = a socket's id, score = when its lease
ends. A connect drops lapsed leases, adds its own and counts, in one round trip (MULTI); each
process's hub renews the leases of its sockets on every tick (one round trip for all of them),
so the sockets of a process that crashed lapse within ``LEASE_SECONDS``; a disconnect removes
its own. Without Redis (one process) the hub counts its own sockets instead (``shared()`` is
False). Redis unreachable: allowed — a limit must not take the chat down — with a warning at
most once a minute."""

import logging
import time
from collections.abc import Iterable

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Longer than the hub's re-check interval (30-42.5 s): a live socket's lease never lapses.
LEASE_SECONDS = 90
WARN_EVERY_SECONDS = 60.0
_last_warning = 0.0
# Wall-clock time: leases are compared across processes (and machines). Tests move it.
_now = time.time


def shared() -> bool:
    """Are the counts kept in Redis (shared by processes)? (``caches[…]`` is the backend
    itself; ``django.core.cache.cache`` is a proxy that isinstance does not see through.)"""
    return isinstance(caches["default"], RedisCache)


def _key(user_id) -> str:
    return caches["default"].make_key(f"ws-sockets:{user_id}")


def _client():
    return caches["default"]._cache.get_client(write=True)


def _unreachable(what: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= WARN_EVERY_SECONDS:
        _last_warning = now
        logger.warning(
            "socket limit: Redis unreachable during %s; not enforced", what, exc_info=True
        )


def acquire(*, user_id, socket_id: str, limit: int) -> bool:
    """Take a place for this socket; False when the user already has ``limit`` open sockets
    (nothing is kept then). Synchronous: call it from a thread."""
    key, now = _key(user_id), _now()
    try:
        pipe = _client().pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {socket_id: now + LEASE_SECONDS})
        pipe.zcard(key)
        pipe.expire(key, LEASE_SECONDS)
        count = pipe.execute()[2]
        if count <= limit:
            return True
        _client().zrem(key, socket_id)
        return False
    except (RedisError, OSError):
        _unreachable("connect")
        return True


def release(*, user_id, socket_id: str) -> None:
    try:
        _client().zrem(_key(user_id), socket_id)
    except (RedisError, OSError):
        _unreachable("disconnect")  # the lease lapses on its own


def renew(sockets: Iterable[tuple[object, str]]) -> None:
    """Extend the leases of these (user id, socket id) pairs: one round trip for all."""
    sockets = list(sockets)
    if not sockets:
        return
    until = _now() + LEASE_SECONDS
    try:
        pipe = _client().pipeline(transaction=False)
        for user_id, socket_id in sockets:
            pipe.zadd(_key(user_id), {socket_id: until}, xx=True)  # not one released meanwhile
        for key in {_key(user_id) for user_id, _ in sockets}:
            pipe.expire(key, LEASE_SECONDS)
        pipe.execute()
    except (RedisError, OSError):
        _unreachable("lease renewal")
