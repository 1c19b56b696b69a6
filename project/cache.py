"""A Redis cache that degrades instead of failing.

The cache holds only counters (DRF throttles, allauth's rate limits, ``apps.core.ratelimit``):
losing it for a while means limits are not counted, which is better than every API call and
every login answering 500. So every error talking to Redis is answered with what an empty cache
would say (a miss), and logged as one warning per interval per process, not one traceback per
call.

After an error the backend stops calling Redis for ``RETRY_AFTER`` seconds: a Redis that hangs
(rather than refuses) would otherwise cost every request ``socket_timeout`` per cache call, and
the sync views of a process share one thread under ASGI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a Redis outage looks like from redis-py (refused, reset, timed out, still loading) and
# plain socket errors: for the cache, the socket limit and the channel layer alike. Not every
# RedisError: a ResponseError is a bug in the caller, and must not pause the cache.
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def _clock() -> float:
    """The time source for the retry pause and the warning interval (patched by tests)."""
    return time.monotonic()


class _OutageState:
    """Per process and Redis location, shared by the per-thread cache instances Django creates."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_until = float("-inf")
        self.next_warning = float("-inf")
        self.suppressed = 0

    def reset(self) -> None:
        with self.lock:
            self.down_until = float("-inf")
            self.next_warning = float("-inf")
            self.suppressed = 0

    def note(
        self,
        *,
        name: str,
        exc: BaseException,
        retry_after: float,
        warning_interval: float,
        consequence: str,
    ) -> None:
        """An outage: skip Redis for ``retry_after`` s, and warn at most once per interval
        (for every user of this location: the cache, the socket limit)."""
        now = _clock()
        with self.lock:
            self.down_until = now + retry_after
            if now < self.next_warning:
                self.suppressed += 1
                return
            self.next_warning = now + warning_interval
            suppressed, self.suppressed = self.suppressed, 0
        # No traceback: the cause is one line, and a traceback per call is what flooded the log.
        logger.warning(
            "cache unreachable (%s on %s: %s); %s until it is back "
            "(%d more errors since the last warning; next warning in %ds at the earliest)",
            type(exc).__name__,
            name,
            exc,
            consequence,
            suppressed,
            int(warning_interval),
        )


class _Outages:
    """One state per Redis location: an outage of one server says nothing about another."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: dict[tuple, _OutageState] = {}

    def of(self, location: tuple) -> _OutageState:
        with self.lock:
            return self.states.setdefault(location, _OutageState())

    def reset(self) -> None:
        with self.lock:
            for state in self.states.values():
                state.reset()


outage = _Outages()

_clients_lock = threading.Lock()
_clients: dict[tuple, Any] = {}


class ResilientRedisCache(RedisCache):
    """``RedisCache`` whose calls answer "miss" while Redis is unreachable.

    OPTIONS (besides redis-py's pool options, e.g. ``socket_timeout``):
    ``RETRY_AFTER`` seconds to skip Redis after an error (default 5),
    ``WARNING_INTERVAL`` seconds between two outage warnings of a process (default 60).
    """

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        self.retry_after = float(options.pop("RETRY_AFTER", 5))
        self.warning_interval = float(options.pop("WARNING_INTERVAL", 60))
        super().__init__(server, {**params, "OPTIONS": options})
        self.outage = outage.of(tuple(self._servers))

    @cached_property
    def _cache(self):
        # One client (and connection pool) per location and options for the process, not per
        # cache instance: Django makes one instance per thread and per asyncio task, and a pool
        # per websocket connect was a TCP connection per connect.
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client

    def redis(self):
        """The process-wide redis-py client of this cache (for commands the cache API lacks,
        e.g. the socket limit's sorted sets). Call it inside ``guarded``."""
        return self._cache.get_client(write=True)

    def guarded(
        self,
        name: str,
        call: Callable[[], T],
        miss: Callable[[], T],
        consequence: str = "rate limits are not counted",
    ) -> T:
        """``call()``, or ``miss()`` while Redis is unreachable (also for ``RETRY_AFTER`` s
        after an error, without trying: a hung Redis would cost every call a timeout)."""
        if _clock() < self.outage.down_until:
            return miss()
        try:
            return call()
        except OUTAGE_ERRORS as exc:
            self.outage.note(
                name=name,
                exc=exc,
                retry_after=self.retry_after,
                warning_interval=self.warning_interval,
                consequence=consequence,
            )
        return miss()

    # The miss answers: what an empty, working cache would return.

    def get(self, key, default=None, version=None):
        return self.guarded(
            "get", lambda: super(RC, self).get(key, default, version), lambda: default
        )

    def get_many(self, keys, version=None):
        return self.guarded("get_many", lambda: super(RC, self).get_many(keys, version), dict)

    def has_key(self, key, version=None):
        return self.guarded("has_key", lambda: super(RC, self).has_key(key, version), lambda: False)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # An empty cache accepts the add: allauth's cache lock and add()-initialised counters
        # then proceed (and fail open) instead of waiting for a lock that can never be taken.
        return self.guarded(
            "add", lambda: super(RC, self).add(key, value, timeout, version), lambda: True
        )

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self.guarded(
            "set", lambda: super(RC, self).set(key, value, timeout, version), lambda: None
        )

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        # The keys that were not stored: all of them.
        return self.guarded(
            "set_many", lambda: super(RC, self).set_many(data, timeout, version), lambda: list(data)
        )

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self.guarded(
            "touch", lambda: super(RC, self).touch(key, timeout, version), lambda: False
        )

    def delete(self, key, version=None):
        return self.guarded("delete", lambda: super(RC, self).delete(key, version), lambda: False)

    def delete_many(self, keys, version=None):
        return self.guarded(
            "delete_many", lambda: super(RC, self).delete_many(keys, version), lambda: None
        )

    def incr(self, key, delta=1, version=None):
        def missing():
            # Django's contract for a key that does not exist; counters then start again.
            raise ValueError(f"Key '{key}' not found.")

        return self.guarded("incr", lambda: super(RC, self).incr(key, delta, version), missing)

    def clear(self):
        return self.guarded("clear", lambda: super(RC, self).clear(), lambda: False)


RC = ResilientRedisCache  # lambdas cannot use the zero-argument super()
