"""At most ``PARLEY_WS_MAX_PER_USER`` open websockets per user, across every server process.

With the Redis cache each user has a sorted set: member = a socket's id, score = when its lease
ends. A connect drops lapsed leases, adds its own and counts, in one round trip (MULTI); each
process's hub renews the leases of its sockets at its session re-check (every 30-42.5 s, one
round trip for all of them), so the sockets of a process that crashed lapse within
``LEASE_SECONDS``; a disconnect removes its own. Without Redis (one process) the sockets this
process has open are counted instead. Redis unreachable: allowed — a limit must not take the
chat down — through the cache's own outage handling (project/cache.py): one warning per
interval, and no Redis call at all for a few seconds after an error."""

import time
from collections.abc import Iterable

from asgiref.sync import sync_to_async
from django.core.cache import caches

from project.cache import ResilientRedisCache

# Longer than the hub's re-check interval (30-42.5 s): a live socket's lease never lapses.
LEASE_SECONDS = 90
NOT_ENFORCED = "the socket limit is not enforced"
# Wall-clock time: leases are compared across processes (and machines). Tests move it.
_now = time.time


def _cache() -> ResilientRedisCache | None:
    # ``caches[…]`` is the backend itself (``django.core.cache.cache`` is a proxy that
    # isinstance does not see through). Its redis client is process-wide, whichever instance.
    cache = caches["default"]
    return cache if isinstance(cache, ResilientRedisCache) else None


def shared() -> bool:
    """Are the counts kept in Redis (shared by processes)?"""
    return _cache() is not None


def key(user_id) -> str:
    return caches["default"].make_key(f"ws-sockets:{user_id}")


def _acquire_shared(cache: ResilientRedisCache, user_id, socket_id: str, limit: int) -> bool:
    def call() -> bool:
        now, redis = _now(), cache.redis()
        pipe = redis.pipeline(transaction=True)
        pipe.zremrangebyscore(key(user_id), "-inf", now)
        pipe.zadd(key(user_id), {socket_id: now + LEASE_SECONDS})
        pipe.zcard(key(user_id))
        pipe.expire(key(user_id), LEASE_SECONDS)
        if pipe.execute()[2] <= limit:
            return True
        redis.zrem(key(user_id), socket_id)
        return False

    return cache.guarded("socket limit (connect)", call, lambda: True, NOT_ENFORCED)


async def acquire(*, user_id, socket_id: str, limit: int, open_here: int) -> bool:
    """Take a place for this socket; False when the user already has ``limit`` open sockets
    (nothing is kept then). ``open_here``: the user's sockets open in this process, which is
    the count without Redis (no thread hop then); with Redis, one round trip off the database
    thread."""
    cache = _cache()
    if cache is None:
        return open_here < limit
    return await sync_to_async(_acquire_shared, thread_sensitive=False)(
        cache, user_id, socket_id, limit
    )


def _release_shared(cache: ResilientRedisCache, user_id, socket_id: str) -> None:
    # Unreachable: the lease lapses on its own.
    cache.guarded(
        "socket limit (disconnect)",
        lambda: cache.redis().zrem(key(user_id), socket_id),
        lambda: None,
        NOT_ENFORCED,
    )


async def release(*, user_id, socket_id: str) -> None:
    cache = _cache()
    if cache is not None:
        await sync_to_async(_release_shared, thread_sensitive=False)(cache, user_id, socket_id)


def _renew_shared(cache: ResilientRedisCache, sockets: list[tuple[object, str]]) -> None:
    def call() -> None:
        until = _now() + LEASE_SECONDS
        pipe = cache.redis().pipeline(transaction=False)
        for user_id, socket_id in sockets:
            pipe.zadd(key(user_id), {socket_id: until}, xx=True)  # not one released meanwhile
        for user_key in {key(user_id) for user_id, _ in sockets}:
            pipe.expire(user_key, LEASE_SECONDS)
        pipe.execute()

    cache.guarded("socket limit (lease renewal)", call, lambda: None, NOT_ENFORCED)


async def renew(sockets: Iterable[tuple[object, str]]) -> None:
    """Extend the leases of these (user id, socket id) pairs: one round trip for all."""
    cache, sockets = _cache(), list(sockets)
    if cache is not None and sockets:
        await sync_to_async(_renew_shared, thread_sensitive=False)(cache, sockets)
