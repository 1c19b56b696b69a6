"""Presence: online (a tab open and used in the last ``IDLE_SECONDS``), away (tabs open, idle),
offline — one state per person over every tab, device and server process.

**Where it lives.** In the Django cache (Redis with ``REDIS_URL``, locmem in one process
otherwise), one entry per user, never in the database::

    "presence:<user id>" -> {"p": {<process>: [level, expires_at]},  # each process's part
                             "hide": bool,                           # show_presence off
                             "said": level, "said_at": t}            # last broadcast state

Each process (its ``fanout.Hub``) knows its own sockets of each user and when each was last
used (``Tracker``, pure, its clock injected). It writes its users' parts in batches — one
``get_many`` and one ``set_many`` for the process (``write``): at once when a user's local
level changes, and every hub tick (``fanout.TICK_SECONDS``, ~10 s) to renew them. A part
expires ``TTL_SECONDS`` after it was written, so a crashed process's users go offline by
themselves. A user's state is the best live part (online > away > offline), "offline" for
everyone when ``hide`` is set.

**Broadcast changes only, coalesced.** The process that writes a user's part compares the
resulting state with ``said`` (the last announced one, in the same entry, so every process
agrees): a change is published as one ``user.presence`` event on ``realtime.USERS_GROUP``, at
most once per ``MIN_INTERVAL_SECONDS`` per user (a later change waits for the window's end,
``Tracker.defer``). A last tab that closes keeps its level for ``CLOSE_GRACE_SECONDS``: a
reload or a flapping connection that reopens within it changes nothing at all.

**Who receives it.** Every hub gets the event once, and hands it only to its local sockets
that show that user's dot (the page sends ``presence-watch`` with the ids of its dots). Each
hub also re-reads its watched users every tick (``read``): a lost event or a crashed process
(its parts expired) is noticed within a tick.

Read-modify-write of one entry by two processes at the same instant may lose one part until
that process's next write (a tick): the cache has no per-field update. Acceptable for an
ephemeral signal; a Redis hash per user would remove it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.cache import cache

from . import realtime

ONLINE, AWAY, OFFLINE = "online", "away", "offline"
STATES = (ONLINE, AWAY, OFFLINE)
_RANK = {OFFLINE: 0, AWAY: 1, ONLINE: 2}


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# A socket not used (no activity frame) for this long makes its user away.
IDLE_SECONDS = _env_float("PARLEY_PRESENCE_IDLE", 300.0)
# A part of an entry not renewed for this long counts no more (the process is gone). Hubs
# renew every ~10 s (7.5-12.5 s): two renewals may be missed. Crash → offline within about
# TTL + one tick (≤ 45 s).
TTL_SECONDS = _env_float("PARLEY_PRESENCE_TTL", 30.0)
# A user's last local socket closing keeps their level this long (a reload, a flap).
CLOSE_GRACE_SECONDS = _env_float("PARLEY_PRESENCE_CLOSE_GRACE", 5.0)
# At most one broadcast change per user per this interval.
MIN_INTERVAL_SECONDS = _env_float("PARLEY_PRESENCE_MIN_INTERVAL", 5.0)
# The most dots one socket may watch.
WATCH_MAX = 500

EVENT = "user.presence"


def clock() -> float:
    """Wall-clock seconds, shared by every process (patched by tests)."""
    return time.time()


def key(user_id) -> str:
    return f"presence:{user_id}"


def new_process_id() -> str:
    return uuid.uuid4().hex[:12]


# --- the entry: pure functions --------------------------------------------------------------


def best(levels: Iterable[str]) -> str:
    out = OFFLINE
    for level in levels:
        if _RANK.get(level, 0) > _RANK[out]:
            out = level
    return out


def true_level(entry: dict | None, now: float) -> str:
    """The best live part of the entry (ignoring ``hide``)."""
    if not entry:
        return OFFLINE
    return best(level for level, expires in entry.get("p", {}).values() if expires > now)


def public_level(entry: dict | None, now: float) -> str:
    """What everyone sees: offline while ``hide``."""
    if not entry or entry.get("hide"):
        return OFFLINE
    return true_level(entry, now)


def shown_level(entry: dict | None, now: float) -> str:
    """What a periodic re-read shows: the announced state while its window lasts (so that a
    re-read does not undo the coalescing), the entry's own state after it (a crashed
    process's parts have expired: offline)."""
    if not entry or entry.get("hide"):
        return OFFLINE
    if now < entry.get("said_at", 0.0) + MIN_INTERVAL_SECONDS:
        return entry.get("said", OFFLINE)
    return public_level(entry, now)


def merge(entry: dict | None, *, process: str, level: str, hide: bool, now: float) -> dict:
    """The entry with this process's part set to ``level`` (offline: removed), its expired
    parts dropped and ``hide`` as this process knows it."""
    entry = dict(entry or {})
    parts = {
        proc: part for proc, part in entry.get("p", {}).items() if part[1] > now and proc != process
    }
    if level != OFFLINE:
        parts[process] = [level, now + TTL_SECONDS]
    entry["p"] = parts
    entry["hide"] = bool(hide)
    return entry


def announce(entry: dict, now: float) -> tuple[str | None, float | None]:
    """Should the entry's (public) state be broadcast now? Returns (the state to broadcast, or
    None) and (when to look again, or None): a change within ``MIN_INTERVAL_SECONDS`` of the
    last broadcast waits for the end of that window. Marks the entry when it says yes."""
    level = public_level(entry, now)
    said = entry.get("said", OFFLINE)
    if level == said:
        return None, None
    due = entry.get("said_at", 0.0) + MIN_INTERVAL_SECONDS
    if now < due:
        return None, due
    entry["said"], entry["said_at"] = level, now
    return level, None


# --- one process's view: pure, with its clock passed in ----------------------------------------


@dataclass
class _Local:
    sockets: dict[str, float] = field(default_factory=dict)  # socket id -> last activity
    closed_at: float | None = None  # when its last socket closed (within the grace)
    written: str = OFFLINE  # the level this process last wrote
    hide: bool | None = None  # None: not read from the database yet


class Tracker:
    """A process's sockets per user and their last activity; what to write and when."""

    def __init__(self, process: str | None = None):
        self.process = process or new_process_id()
        self.users: dict[object, _Local] = {}
        # user -> when a deferred broadcast may go (the end of their window).
        self.deferred: dict[object, float] = {}

    def opened(self, user_id, socket_id: str, now: float) -> None:
        local = self.users.setdefault(user_id, _Local())
        local.sockets[socket_id] = now  # opening a tab is using it
        local.closed_at = None

    def closed(self, user_id, socket_id: str, now: float) -> None:
        local = self.users.get(user_id)
        if local is None:
            return
        local.sockets.pop(socket_id, None)
        if not local.sockets:
            local.closed_at = now

    def activity(self, user_id, socket_id: str, now: float) -> bool:
        """The page was used. True if that changes the user's local level (away → online)."""
        local = self.users.get(user_id)
        if local is None or socket_id not in local.sockets:
            return False
        before = self.level(user_id, now)
        local.sockets[socket_id] = now
        return self.level(user_id, now) != before

    def set_hide(self, user_id, hide: bool) -> bool:
        """The user's show_presence as the database has it; True if it changed."""
        local = self.users.get(user_id)
        if local is None or local.hide == hide:
            return False
        changed = local.hide is not None
        local.hide = hide
        return changed

    def level(self, user_id, now: float) -> str:
        local = self.users.get(user_id)
        if local is None:
            return OFFLINE
        if not local.sockets:
            if local.closed_at is not None and now < local.closed_at + CLOSE_GRACE_SECONDS:
                return local.written  # within the grace: as it was
            return OFFLINE
        newest = max(local.sockets.values())
        return ONLINE if now - newest < IDLE_SECONDS else AWAY

    def unknown_privacy(self) -> list:
        return [user_id for user_id, local in self.users.items() if local.hide is None]

    def changed(self, now: float) -> list:
        """Users whose local level differs from what this process wrote, or whose deferred
        broadcast is due."""
        out = [u for u in self.users if self.level(u, now) != self.users[u].written]
        out += [u for u, due in self.deferred.items() if due <= now and u not in out]
        return out

    def next_due(self, now: float) -> float | None:
        """When a level changes by itself next (a grace ends, a socket goes idle, a deferred
        broadcast is due)."""
        times = list(self.deferred.values())
        for local in self.users.values():
            if local.sockets:
                times.append(max(local.sockets.values()) + IDLE_SECONDS)
            elif local.closed_at is not None:
                times.append(local.closed_at + CLOSE_GRACE_SECONDS)
        return min(times) if times else None

    def updates(self, user_ids: Iterable, now: float) -> dict[object, tuple[str, bool]]:
        """{user: (level, hide)} to write for these users."""
        return {
            u: (self.level(u, now), bool(self.users[u].hide)) for u in user_ids if u in self.users
        }

    def wrote(self, results: dict[object, str], deferred: dict[object, float]) -> None:
        """``write`` stored these levels (and deferred these broadcasts): users offline with no
        socket are forgotten."""
        for user_id, level in results.items():
            local = self.users.get(user_id)
            if local is None:
                continue
            local.written = level
            self.deferred.pop(user_id, None)
            if level == OFFLINE and not local.sockets and user_id not in deferred:
                del self.users[user_id]  # (kept while a broadcast of theirs is deferred)
        self.deferred.update(deferred)


# --- I/O: the cache and the channel layer ---------------------------------------------------------


def write(
    process: str,
    updates: dict[object, tuple[str, bool]],
    now: float,
    *,
    publish: Callable[[object, str], None] | None = None,
) -> tuple[dict[object, str], dict[object, float]]:
    """Write these users' parts of this process (one get_many, one set_many, one delete_many)
    and broadcast the public changes that are due. Returns ({user: level written}, {user: when
    a deferred broadcast is due})."""
    if not updates:
        return {}, {}
    publish = publish or publish_change
    keys = {key(u): u for u in updates}
    found = cache.get_many(list(keys))
    store, drop, deferred, written = {}, [], {}, {}
    for k, user_id in keys.items():
        level, hide = updates[user_id]
        entry = merge(found.get(k), process=process, level=level, hide=hide, now=now)
        change, due = announce(entry, now)
        if change is not None:
            publish(user_id, change)
        if due is not None:
            deferred[user_id] = due
        recent = now < entry.get("said_at", 0.0) + MIN_INTERVAL_SECONDS  # its window holds
        if entry["p"] or entry.get("said", OFFLINE) != OFFLINE or due is not None or recent:
            store[k] = entry
        else:
            drop.append(k)
        written[user_id] = level
    if store:
        cache.set_many(store, timeout=TTL_SECONDS + MIN_INTERVAL_SECONDS)
    if drop:
        cache.delete_many(drop)
    return written, deferred


def read(user_ids: Iterable, now: float | None = None) -> dict[object, str]:
    """{user: the state to show}: one get_many for them all."""
    now = clock() if now is None else now
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    found = cache.get_many([key(u) for u in ids])
    return {u: shown_level(found.get(key(u)), now) for u in ids}


def states_for(profiles: Iterable) -> dict[int, str]:
    """{user id: state} for these profiles (for pages and the API): one get_many; a profile
    whose ``show_presence`` is off is offline whatever the cache says."""
    profiles = list(profiles)
    states = read(p.user_id for p in profiles)
    return {
        p.user_id: (states.get(p.user_id, OFFLINE) if p.show_presence else OFFLINE)
        for p in profiles
    }


def publish_change(user_id, level: str, hide: bool | None = None) -> None:
    event = {"type": EVENT, "user": user_id, "presence": level}
    if hide is not None:
        event["hide"] = hide
    realtime.publish(realtime.USERS_GROUP, event, lost=f"presence of {user_id}")


def privacy_changed(user_id, *, show: bool, now: float | None = None) -> None:
    """The user turned "Show my online status" on or off (after commit): their entry says so
    at once and, if that changes what others see, one ``user.presence`` event says it — not
    coalesced (the user asked). The event also tells the hubs with their sockets (``hide``)."""
    now = clock() if now is None else now
    k = key(user_id)
    entry = cache.get(k)
    if entry is None:
        # Offline for everyone either way; the hubs with a socket of theirs learn the
        # setting (and write their part with it).
        publish_change(user_id, OFFLINE, hide=not show)
        return
    if bool(entry.get("hide")) == (not show):
        return  # not a change of this setting (another field of the profile was saved)
    entry["hide"] = not show
    level = public_level(entry, now)
    changed = level != entry.get("said", OFFLINE)
    if changed:
        entry["said"], entry["said_at"] = level, now
    cache.set(k, entry, timeout=TTL_SECONDS + MIN_INTERVAL_SECONDS)
    publish_change(user_id, level if changed else entry.get("said", OFFLINE), hide=not show)
