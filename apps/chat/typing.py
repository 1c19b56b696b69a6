"""Typing indicators: an ephemeral signal, never stored, never in the room's seq'd stream.

How it travels:

1. The page sends ``{"type": "typing"}`` at most once every 3 s while the composer has text
   (``{"type": "typing", "stop": true}`` when it is sent or emptied). The consumer lets a
   socket publish at most one start per ``SOCKET_START_SECONDS`` while it types, none within
   ``SOCKET_MIN_SECONDS`` of its last start, and one stop per start (extras are dropped, no
   error: ``SocketGate``), checks once per
   socket that its user may post in the room and that the room is not above
   ``PARLEY_TYPING_MAX_MEMBERS`` (``may_type``: one query per socket), and publishes a
   ``room.typing`` event ``{room, user, name, stop}`` to the room's group.
2. Each process's hub (fanout.Hub.room_typing) keeps, per room it has viewers of, the current
   typers ``{user id: (display name, expires at)}`` (``RoomTypers``): a typer expires
   ``TTL_SECONDS`` after their last start, and leaves at once on a stop or when a new message
   of theirs arrives (fanout.Hub.dispatch).
3. When the set changes, the hub sends every local viewer of the room ONE JSON frame, built
   once for all of them: ``{"type": "typing", "room": id, "users": [{"id", "name"}, ...]}``
   (viewer-independent: the page drops its own id). At most one frame per
   ``FRAME_SECONDS`` per room (``Board``): changes inside that window are coalesced into the
   next frame; a room whose set does not change gets no frame at all.

Cost: per typer, one channel-layer event every 3 s (one per process in the room's group); per
viewer, at most one small frame per second, whatever the number of typers. Nothing is written
to the database, nothing goes through Redis but the events. A lost event costs a typer shown
late or a moment less: the expiry is each hub's own, so a line never sticks.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count

from . import realtime
from .models import Room

logger = logging.getLogger(__name__)

ROOM_TYPING = "room.typing"

# A typer is shown this long after their last start frame. The page repeats one every 3 s
# while typing, so a steady typer never expires; one who stops disappears from every page
# within TTL + FRAME_SECONDS (≤ 5.5 s: the issue allows 6).
TTL_SECONDS = 4.5
# Each room's viewers get at most one typing frame per this interval (per process, hence per
# socket: a socket views one room).
FRAME_SECONDS = 1.0
# What one socket may publish: a start at most this often while it types (the page sends one
# per 3 s), and never within SOCKET_MIN_SECONDS of its last start (a start-stop-start flood:
# at most 1 / SOCKET_MIN_SECONDS starts a second, each with at most one stop). Extras are
# dropped silently.
SOCKET_START_SECONDS = 1.0
SOCKET_MIN_SECONDS = 0.2
# Longer display names are cut in the frame (a profile name is short anyway).
NAME_MAX = 80


def max_members() -> int:
    """Rooms with more members than this get no typing (the sender is told once)."""
    return settings.PARLEY_TYPING_MAX_MEMBERS


# --- the pure state, with a clock passed in ------------------------------------------------


class RoomTypers:
    """The current typers of one room: {user id: (name, expires at)} in the order they
    started. Every method takes ``now`` (loop time): no clock of its own, tested without
    sleeps."""

    __slots__ = ("typers",)

    def __init__(self):
        self.typers: dict[object, tuple[str, float]] = {}

    def start(self, user_id, name: str, now: float) -> bool:
        """A start frame: shown until ``now + TTL_SECONDS``. True if the shown set changed."""
        old = self.typers.get(user_id)
        self.typers[user_id] = (name, now + TTL_SECONDS)
        return old is None or old[0] != name

    def stop(self, user_id) -> bool:
        """A stop frame, or their message arrived. True if they were shown."""
        return self.typers.pop(user_id, None) is not None

    def expire(self, now: float) -> bool:
        """Drop the typers whose time is up. True if any was."""
        gone = [user_id for user_id, (_, until) in self.typers.items() if until <= now]
        for user_id in gone:
            del self.typers[user_id]
        return bool(gone)

    def next_expiry(self) -> float | None:
        return min((until for _, until in self.typers.values()), default=None)

    def shown(self) -> tuple:
        """What the frame shows: ((id, name), ...), in the order they started."""
        return tuple((user_id, name) for user_id, (name, _) in self.typers.items())


def typing_frame(room_id: int, shown: tuple) -> dict:
    """The ASGI message of a room's typing frame (built once for all its viewers)."""
    from .delivery import json_frame  # delivery imports realtime; typing is imported by fanout

    users = [{"id": user_id, "name": name} for user_id, name in shown]
    return json_frame({"type": "typing", "room": room_id, "users": users})


@dataclass
class _RoomState:
    typers: RoomTypers
    sent: tuple | None = ()  # what the last frame showed (None: unknown, send the next one)
    sent_at: float | None = None  # when it went
    wake_at: float | None = None  # when the timer fires
    timer: object = None


class Board:
    """A hub's typing state for every room it has viewers of, and the coalescing: a frame
    when a room's shown set differs from the last one sent, at most one per FRAME_SECONDS.

    ``deliver(room_id, frame)`` hands a frame to the room's local viewers; ``clock`` and
    ``call_later(delay, fn)`` default to the running loop's (tests pass their own)."""

    def __init__(
        self,
        deliver: Callable[[int, dict], None],
        clock: Callable[[], float] | None = None,
        call_later: Callable | None = None,
    ):
        self.deliver = deliver
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.call_later = call_later or (
            lambda delay, fn: asyncio.get_running_loop().call_later(delay, fn)
        )
        self.rooms: dict[int, _RoomState] = {}

    def start(self, room_id: int, user_id, name: str) -> None:
        state = self._state(room_id)
        state.typers.start(user_id, name, self.clock())
        self.wake(room_id)

    def stop(self, room_id: int, user_id) -> None:
        state = self.rooms.get(room_id)
        if state is not None and state.typers.stop(user_id):
            self.wake(room_id)

    def message(self, room_id: int, author) -> None:
        """A new message of ``author`` arrived: they are not typing it any more. Every page
        drops them as the article arrives (room.js), so what they show is no longer the last
        frame sent: the next frame goes in any case (if they type again at once, it shows
        them again; else it confirms the line without them)."""
        state = self.rooms.get(room_id)
        if state is None:
            return
        if state.typers.stop(author):
            state.sent = None  # differs from any set: the next frame goes whatever it shows
            self.wake(room_id)

    def current(self, room_id: int) -> dict | None:
        """The frame the room's viewers here were last sent, if it shows someone: for a page
        that opens the room while they type (else it would learn of them only from their
        next typing frame, up to 3 s later)."""
        state = self.rooms.get(room_id)
        if state is None or not state.sent:
            return None
        return typing_frame(room_id, state.sent)

    def forget(self, room_id: int) -> None:
        """No local viewer left: nothing to show to anyone here."""
        state = self.rooms.pop(room_id, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def wake(self, room_id: int) -> None:
        """Expire, send a frame if the set changed and one may go now, and set the timer for
        the next thing due (an expiry, or the coalesced frame)."""
        state = self.rooms.get(room_id)
        if state is None:
            return
        now = self.clock()
        state.typers.expire(now)
        shown = state.typers.shown()
        due = None
        if shown != state.sent:
            next_frame = None if state.sent_at is None else state.sent_at + FRAME_SECONDS
            if next_frame is None or next_frame <= now:
                state.sent, state.sent_at = shown, now
                try:
                    self.deliver(room_id, typing_frame(room_id, shown))
                except Exception:
                    logger.exception("typing frame for room %s failed", room_id)
            else:
                due = next_frame
        expiry = state.typers.next_expiry()
        if expiry is not None and (due is None or expiry < due):
            due = expiry
        if due is None:
            if not shown and (state.sent_at is None or state.sent_at + FRAME_SECONDS <= now):
                self.forget(room_id)  # idle, and a new frame may go at once
            elif not shown:
                due = state.sent_at + FRAME_SECONDS  # to forget it then
        if due is not None:
            self._wake_at(room_id, state, due, now)

    def _state(self, room_id: int) -> _RoomState:
        state = self.rooms.get(room_id)
        if state is None:
            state = self.rooms[room_id] = _RoomState(RoomTypers())
        return state

    def _wake_at(self, room_id: int, state: _RoomState, when: float, now: float) -> None:
        if state.timer is not None and state.wake_at is not None and now < state.wake_at <= when:
            return  # an earlier wake is set: it sets the next one
        if state.timer is not None:
            state.timer.cancel()
        state.wake_at = when
        state.timer = self.call_later(max(when - now, 0.0), lambda: self._fired(room_id, state))

    def _fired(self, room_id: int, state: _RoomState) -> None:
        if self.rooms.get(room_id) is not state:
            return
        state.timer = state.wake_at = None
        self.wake(room_id)


# --- the sending side (the consumer) ------------------------------------------------------


class SocketGate:
    """One socket's typing: what it may publish (cheap, in memory), and whether its user may
    type in the room at all (asked once, ``allowed``)."""

    __slots__ = ("allowed", "told", "active", "last_start")

    def __init__(self):
        self.allowed: bool | None = None  # None: not asked yet
        self.told = False  # told typing is off in this room
        self.active = False  # its last published event was a start
        self.last_start = float("-inf")

    def admit(self, stop: bool, now: float) -> bool:
        """May this frame be published now? (Records it if so.)"""
        if stop:
            # One stop per admitted start at most, so stops need no limit of their own (and
            # the line clears at once however soon the composer was emptied).
            if not self.active:
                return False  # nothing to stop
            self.active = False
        else:
            if now - self.last_start < SOCKET_MIN_SECONDS:
                return False
            if self.active and now - self.last_start < SOCKET_START_SECONDS:
                return False
            self.active = True
            self.last_start = now
        return True


def may_type(*, room: Room, user) -> tuple[bool, bool]:
    """(may post in the room, the room is small enough for typing), in one query."""
    found = list(
        Room.objects.postable_by(user)
        .filter(pk=room.pk)
        .annotate(members=Count("memberships"))
        .values_list("members", flat=True)
    )
    if not found:
        return False, False
    return True, found[0] <= max_members()


def display_name(user) -> str:
    """The name the typing line shows (the profile's display name, as articles do)."""
    profile = getattr(user, "profile", None)
    name = profile.name if profile is not None else user.get_username()
    return name[:NAME_MAX]


def cached_name(user) -> str | None:
    """The name without a query, when the socket's user has its profile cached."""
    field = user._meta.get_field("profile")
    if not field.is_cached(user):
        return None
    profile = field.get_cached_value(user)
    return (profile.name if profile is not None else user.get_username())[:NAME_MAX]


def publish(*, room_id: int, user_id, name: str, stop: bool) -> None:
    """The ``room.typing`` event to the room's group (every process with viewers of it)."""
    event = {"type": ROOM_TYPING, "room": room_id, "user": user_id, "name": name}
    if stop:
        event["stop"] = True
    realtime.publish(realtime.room_group(room_id), event, lost=f"typing in room {room_id}")


def off_frame(room_id: int) -> str:
    """The notice a sender gets once when typing is off in the room (too many members)."""
    import json

    return json.dumps(
        {"type": "typing_off", "room": room_id, "limit": max_members()}, separators=(",", ":")
    )
