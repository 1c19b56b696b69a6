"""A fixed-window counter in the Django cache. With REDIS_URL the cache is Redis, so every
server process shares the same counters.

A cache outage is handled by the cache backend (``project.cache.ResilientRedisCache``): it
answers like an empty cache, so a hit is counted as the first of its window and the action goes
through (the limit fails open and is back as soon as Redis is)."""

import time

from django.core.cache import cache


class RateLimited(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"rate limited, retry after {retry_after}s")
        self.retry_after = retry_after


def hit(*, key: str, limit: int, window: int) -> None:
    """Count one action for ``key``; raise ``RateLimited`` past ``limit`` per ``window`` seconds."""
    now = int(time.time())
    bucket = now // window
    cache_key = f"rl:{key}:{bucket}"
    # add() is atomic (SET NX on Redis): it initialises the window; incr() is atomic too.
    cache.add(cache_key, 0, timeout=window + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr (or the cache is unreachable)
        cache.set(cache_key, 1, timeout=window + 1)
        count = 1
    if count > limit:
        raise RateLimited(retry_after=(bucket + 1) * window - now)
