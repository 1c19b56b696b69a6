"""A fixed-window counter in the Django cache. With REDIS_URL the cache is Redis, so every
server process shares the same counters."""

import logging
import time

from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


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
    try:
        cache.add(cache_key, 0, timeout=window + 1)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.set(cache_key, 1, timeout=window + 1)
            count = 1
    except (RedisError, OSError):
        # The counters' store (Redis) is unreachable: let the action through rather than fail
        # it; the limit is back as soon as Redis is.
        logger.warning("rate-limit store unreachable; %s not counted", key)
        return
    if count > limit:
        raise RateLimited(retry_after=(bucket + 1) * window - now)
