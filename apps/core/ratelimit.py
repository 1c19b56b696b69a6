"""Fixed-window counters in the Django cache. With REDIS_URL the cache is Redis, so every
server process shares the same counters.

``hit`` is the whole limit for simple cases (count one action, refuse past a limit). The login
and password-reset limits (``apps.accounts.login_limits``) need more than one counter per
attempt and to give a reserved slot back, so the building blocks are public too: a ``Window``
(the current fixed window: its bucket and when it ends), ``count``, ``bump``, ``unbump`` and
``forget``. Keys are ``rl:<name>:<bucket>`` (tests clear ``rl:*``).

A cache outage is handled by the cache backend (``project.cache.ResilientRedisCache``): it
answers like an empty cache, so a hit is counted as the first of its window and the action goes
through (the limit fails open and is back as soon as Redis is)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from django.core.cache import cache


def _clock() -> float:
    """The time source of every window (patched by tests)."""
    return time.time()


class RateLimited(Exception):
    """``retry_after`` whole seconds; ``message``, when the caller set one, says what is limited
    in the user's words (``apps.chat.errors.describe`` falls back to a general one)."""

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(f"rate limited, retry after {retry_after}s")
        self.retry_after = retry_after
        self.message = message


@dataclass(frozen=True)
class Window:
    """The fixed window of ``seconds`` that contains ``now``."""

    seconds: int
    bucket: int
    retry_after: int  # whole seconds until the window ends, at least 1

    @classmethod
    def current(cls, seconds: int) -> Window:
        seconds = int(seconds)
        now = _clock()
        bucket = int(now // seconds)
        return cls(seconds, bucket, max(1, int((bucket + 1) * seconds - now)))

    def key(self, name: str) -> str:
        return f"rl:{name}:{self.bucket}"

    @property
    def timeout(self) -> int:
        # A second past the window, so a counter never expires while its window is current.
        return self.seconds + 1

    def limited(self) -> RateLimited:
        return RateLimited(retry_after=self.retry_after)


def count(name: str, window: Window) -> int:
    """The count of ``name`` in ``window`` (0 if none)."""
    value = cache.get(window.key(name), 0)
    return value if isinstance(value, int) else 0


def bump(name: str, window: Window) -> int:
    """Add one to ``name`` in ``window``; return the new count (atomic across processes)."""
    key = window.key(name)
    # add() is atomic (SET NX on Redis): it initialises the window; incr() is atomic too.
    cache.add(key, 0, timeout=window.timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr (or the cache is unreachable)
        cache.set(key, 1, timeout=window.timeout)
        return 1


def unbump(name: str, window: Window) -> None:
    """Give back one ``bump`` (a reserved slot that was not used)."""
    with contextlib.suppress(ValueError):  # already expired: nothing to give back
        cache.decr(window.key(name))


def forget(name: str, window: Window) -> None:
    """Drop the count of ``name`` in ``window``."""
    cache.delete(window.key(name))


def hit(*, key: str, limit: int, window: int) -> None:
    """Count one action for ``key``; raise ``RateLimited`` past ``limit`` per ``window`` seconds."""
    current = Window.current(window)
    if bump(key, current) > limit:
        raise current.limited()
