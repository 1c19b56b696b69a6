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
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a Redis outage looks like from redis-py: its own errors (connection refused, timeouts,
# protocol errors) and plain socket errors.
OUTAGE_ERRORS = (RedisError, OSError)


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

    def _guard(self, name: str, call: Callable[[], T], miss: Callable[[], T]) -> T:
        if _clock() < self.outage.down_until:
            return miss()
        try:
            return call()
        except OUTAGE_ERRORS as exc:
            self._note_outage(name, exc)
        return miss()

    def _note_outage(self, name: str, exc: BaseException) -> None:
        now = _clock()
        state = self.outage
        with state.lock:
            state.down_until = now + self.retry_after
            if now < state.next_warning:
                state.suppressed += 1
                return
            state.next_warning = now + self.warning_interval
            suppressed, state.suppressed = state.suppressed, 0
        # No traceback: the cause is one line, and a traceback per call is what flooded the log.
        logger.warning(
            "cache unreachable (%s on %s: %s); rate limits are not counted until it is back "
            "(%d more errors since the last warning; next warning in %ds at the earliest)",
            type(exc).__name__,
            name,
            exc,
            suppressed,
            int(self.warning_interval),
        )

    # The miss answers: what an empty, working cache would return.

    def get(self, key, default=None, version=None):
        return self._guard(
            "get", lambda: super(RC, self).get(key, default, version), lambda: default
        )

    def get_many(self, keys, version=None):
        return self._guard("get_many", lambda: super(RC, self).get_many(keys, version), dict)

    def has_key(self, key, version=None):
        return self._guard("has_key", lambda: super(RC, self).has_key(key, version), lambda: False)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # An empty cache accepts the add: allauth's cache lock and add()-initialised counters
        # then proceed (and fail open) instead of waiting for a lock that can never be taken.
        return self._guard(
            "add", lambda: super(RC, self).add(key, value, timeout, version), lambda: True
        )

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(
            "set", lambda: super(RC, self).set(key, value, timeout, version), lambda: None
        )

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        # The keys that were not stored: all of them.
        return self._guard(
            "set_many", lambda: super(RC, self).set_many(data, timeout, version), lambda: list(data)
        )

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(
            "touch", lambda: super(RC, self).touch(key, timeout, version), lambda: False
        )

    def delete(self, key, version=None):
        return self._guard("delete", lambda: super(RC, self).delete(key, version), lambda: False)

    def delete_many(self, keys, version=None):
        return self._guard(
            "delete_many", lambda: super(RC, self).delete_many(keys, version), lambda: None
        )

    def incr(self, key, delta=1, version=None):
        def missing():
            # Django's contract for a key that does not exist; counters then start again.
            raise ValueError(f"Key '{key}' not found.")

        return self._guard("incr", lambda: super(RC, self).incr(key, delta, version), missing)

    def clear(self):
        return self._guard("clear", lambda: super(RC, self).clear(), lambda: False)


RC = ResilientRedisCache  # lambdas cannot use the zero-argument super()
