"""Per-process fan-out: one channel-layer subscription per room per process, not per socket.

Every websocket process (each ASGI worker, on one machine or many) has one ``Hub`` per event
loop. The hub owns one channel-layer channel; it joins a room's group when the first local
socket of that room connects and leaves it when the last one goes. ``group_send`` therefore
costs one channel-layer message per process, whatever the number of sockets, and the hub hands
each event — rendered once, by the sender — to its local sockets with no task, queue or
database work per recipient on the common path (``delivery.SocketStream.offer``). Events are
dispatched by kind (``EVENT_HANDLERS``); members are described by ``RoomMember`` and
``SocketMember``.

Joining is safe under concurrency: the first joins of an idle hub share one channel (opened
once), each room's subscription runs in a task of its own that joiners wait for shielded (a
cancelled handshake leaves alone), and group changes are serialised per group, not for the
whole hub.

The channel layer stays at-most-once and Redis stays the only shared engine. What the layer
drops, a restart forgets or an outage delays is recovered from the database: every
``TICK_SECONDS`` the hub re-joins its groups (a restarted Redis has none) and reads the rooms'
last seq in one query; a socket behind it catches up. After a failed receive it does the same
at once, with backoff, so an outage costs a delay, not a reconnect storm.

The hub is also in one process-wide group for identity events (``realtime.USERS_GROUP``):
a revoked session's sockets are closed with 4401, a renamed user's sockets forget the profile
they cached. As those may be lost too, every ``VERIFY_SECONDS`` the hub re-checks all its
sockets' sessions (two queries for the process) and renews their per-user leases
(socketlimit, one Redis round trip).

A revocation can arrive while a socket is between its handshake's session read and its
registration here (the room query, the socket limit): the hub keeps the revocations of the last
``RECENT_REVOCATION_SECONDS`` and ``join`` re-checks a new socket that one of them matches (a
re-check rather than a close: a session logged in after a password change is valid, although
"all sessions" matches it). A hub that is idle is in no group and learns nothing; its first
sockets rely on the periodic re-check like a lost event does.

**Watchers.** Besides the sockets *viewing* a room (``members``: its HTML stream), a room has
*watchers*: the user streams (delivery.UserStream) of the sockets whose user is a member of it,
wherever they are — another room's page, the home page. Viewers and watchers share the
process's one subscription of the room's group (the process is in it once while it has
either). On each change the viewers get the article as before, and each watcher's counts
(unread.RoomCounts) apply the event's ``meta``, built once per event into an ``unread.Fact``:
no query, no template, a few comparisons per watcher, and a small JSON frame when a number
changed. The hub keeps each watched room's last ``REPLAY_MAX`` facts, so that a snapshot of the
counts read while events were on their way can be completed exactly (unread.py).

User events (``user.rooms``, ``user.read``, ``directory.changed``) arrive in the users group
like the identity events; room events (``room.access``, ``room.updated``) in the room's group.
What they imply is re-checked from the database too, since they may be lost: the periodic
refresh re-reads the counts of a watcher left behind the room's last seq (a lost change), and
the session re-check also re-checks that each viewed private room is still visible (a lost
``room.access``: 4403) and that each user stream's rooms, settings and pointers are the
database's (a lost ``user.rooms`` / ``user.read``) — two queries more for the process.
"""

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Protocol

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from channels.layers import get_channel_layer

from apps.accounts.sessions import identities_still_valid

from . import delivery, presence, realtime, selectors, services, socketlimit, unread
from . import typing as typing_
from .models import Membership, Room
from .realtime import LAYER_ERRORS

logger = logging.getLogger(__name__)

# How often the hub re-joins its groups and checks the database for what the layer lost.
TICK_SECONDS = 10.0
RETRY_MAX_SECONDS = 5.0
# How often the sockets' sessions are re-checked (on the first tick after it): a session that
# expired or was revoked while its event was lost is closed within about 40 s.
VERIFY_SECONDS = 30.0
# Longer than a handshake takes between its session read and the hub's join.
RECENT_REVOCATION_SECONDS = 5.0

# A stopped hub's task still running after this long is cancelled again (_until_cancelled).
CANCEL_AGAIN_SECONDS = 1.0

# The facts of each watched room kept for replay over a snapshot (unread.py): far more than
# arrive while a snapshot is read and delivered (milliseconds); past it, a snapshot older
# than the evicted facts is completed from the database instead.
REPLAY_MAX = 100
# A viewer or a watcher behind the room's last seq at the refresh catches up from the
# database only if it still is after this long: an event on its way is not a lost one.
LOST_GRACE_SECONDS = 1.0
# Pointers moved by live reading are written at most this often, in one batch for the
# process (Hub.read_later): well inside the 2 s in which the user's other tabs must clear.
READ_FLUSH_SECONDS = 1.0
# They are written on a thread (and a database connection) of their own: a batch of 500
# pointers is ~20 ms of row updates, which the one thread that serves every socket's
# database work (sends first) must not wait behind.
_READS_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-live-reads")
# Presence batches (cache reads and writes, the privacy query of new users) run on a thread
# of their own too: never behind the sockets' database work, never holding it up.
_PRESENCE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-presence")
# A change of a local user's level is written after this (a connect storm: one batch).
PRESENCE_BATCH_SECONDS = 0.25

# Each room's viewers get at most one read-receipts frame this often (Hub.receipts_later);
# past this many rooms remembered, those quiet for longer are forgotten.
RECEIPTS_SECONDS = 1.0
RECEIPTS_SENT_MAX = 1000

# Channel-layer event kind -> (the Hub method that handles it, what it is, for the logs). A
# new kind of event is a line here and a method. (Looked up by name on each event, so a
# patched method is the one called.)
EVENT_HANDLERS = {
    realtime.ROOM_CHANGE: ("dispatch", "room"),
    "chat.message": ("dispatch", "room"),  # the name before "room.change" (a rolling deploy)
    realtime.ROOM_ACCESS: ("room_access", "room"),
    realtime.ROOM_UPDATED: ("room_updated", "room"),
    realtime.ROOM_READ: ("room_read", "room"),
    "user.revoke": ("revoke", "identity"),
    "user.changed": ("profile_changed", "identity"),
    realtime.USER_ROOMS: ("user_rooms", "user"),
    realtime.USER_READ: ("user_read", "user"),
    realtime.DIRECTORY_CHANGED: ("directory_changed", "user"),
    presence.EVENT: ("presence_changed", "user"),
    typing_.ROOM_TYPING: ("room_typing", "room"),
}


class RoomMember(Protocol):
    """What the hub needs of anything it delivers a room's events to."""

    def offer(self, event: dict) -> None:
        """A live event of the room, with its ASGI ``frame`` built once for every member.
        Synchronous and cheap: called once per member per event."""

    def catch_up_to(self, seq: int) -> None:
        """The room's last seq, read from the database: fetch what is missing up to it."""


class SocketMember(RoomMember, Protocol):
    """A user's socket (a member whose ``user_id`` is not None): identity events and the
    periodic session re-check reach it too."""

    user_id: object
    session_key: str | None
    socket_id: str

    def revoke(self) -> None:
        """Its session ended: close with 4401."""

    def profile_refresh(self, updated_at: datetime | None) -> None:
        """Forget the cached profile unless it was saved at ``updated_at`` (None: changed)."""

    def forbid(self) -> None:
        """It may no longer see the room it views: close with 4403."""

    def rooms_changed(self) -> None:
        """Its user's memberships changed: re-read them (user stream), re-check the room."""

    # Its user stream (delivery.UserStream), once started; None for a socket that has none.
    user_stream: object


class Watcher(Protocol):
    """A user stream as the hub sees it (delivery.UserStream)."""

    user_id: object

    def room_change(self, fact: unread.Fact) -> None:
        """Count one change of a watched room (synchronous and cheap: once per watcher per
        event)."""

    def lost_room(self, room_id: int) -> None:
        """Its user may no longer see the room: forget it, tell the page (sidebar)."""

    def post(self, frame: dict) -> None:
        """Send this ASGI frame (built once for every recipient), in order."""

    def behind(self, room_id: int, last_seq: int) -> bool:
        """Are its counts of the room behind the room's last seq?"""

    def resync(self, room_ids) -> None:
        """Re-read these rooms' counts from the database."""

    def read_to(self, room_id: int, pointer: int) -> None:
        """The user's pointer in the room moved forward to ``pointer`` (live reading)."""


class _Room:
    __slots__ = ("members", "watchers", "subscribed", "subscribed_at", "recent", "evicted")

    def __init__(self):
        self.members: set[RoomMember] = set()  # the viewers: the room's HTML stream
        self.watchers: set[Watcher] = set()  # the user streams counting it
        # Puts the process in the room's group; every joiner waits for it (shielded: a
        # cancelled joiner just leaves, the subscription goes on for the others).
        self.subscribed: asyncio.Task | None = None
        # Loop time the subscription completed at: a snapshot read after it misses nothing.
        self.subscribed_at: float | None = None
        # The last facts received (while it has watchers), for replay over a snapshot, and
        # the highest seq dropped from them.
        self.recent: deque[unread.Fact] = deque()
        self.evicted = 0

    def remember(self, fact: unread.Fact) -> None:
        recent = self.recent
        if len(recent) >= REPLAY_MAX:
            old = recent.popleft()
            if old.seq > self.evicted:
                self.evicted = old.seq
        recent.append(fact)

    def forget(self) -> None:
        """No watcher left: the facts are not needed (one coming back reads a new snapshot)."""
        for fact in self.recent:
            if fact.seq > self.evicted:
                self.evicted = fact.seq
        self.recent.clear()


class Hub:
    """The process's (event loop's) subscriptions: room id -> the local sockets in it.

    Group membership changes are serialised per group (``_group_lock``): a leave and a re-join
    of one room never cross in Redis, and a connect to one room never waits behind another
    room's, nor behind the periodic refresh of all of them."""

    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.rooms: dict[int, _Room] = {}
        # The local sockets of each user (attached), for identity and user events and the
        # per-user limit. The hub runs while it has any, or any room.
        self.users: dict[object, set[SocketMember]] = {}
        # Each watcher's rooms.
        self.watching: dict[Watcher, set[int]] = {}
        # (loop time, user.revoke event) of the last RECENT_REVOCATION_SECONDS, oldest first.
        self.recent_revocations: deque[tuple[float, dict]] = deque()
        # New sockets a recent revocation matched, re-checked in batches by one task.
        self.to_check: set[SocketMember] = set()
        self.checking: asyncio.Task | None = None
        # The reading and ticking tasks, while the hub is open.
        self.tasks: list[asyncio.Task] = []
        # Opens the hub (one channel, the users group, the tasks): shared by every room that
        # joins while it runs, so two first joins never make two channels.
        self._opening: asyncio.Task | None = None
        # group -> [lock, users]; an entry lives while someone holds or waits for its lock.
        self._group_locks: dict[str, list] = {}
        # Leaves of cancelled joiners, running on their own.
        self._background: set[asyncio.Task] = set()
        # Pointers read live, not written yet ({room id: {user id: seq}}), and the timer
        # that writes them.
        self._reads: dict[int, dict[object, int]] = {}
        self._read_timer: asyncio.TimerHandle | None = None
        # Presence (presence.py): this process's sockets per user, the sockets showing each
        # user's dot, the state last delivered to them, and the timer of the next batch.
        self.presence = presence.Tracker()
        self.presence_watchers: dict[object, set] = {}
        self.presence_watching: dict[object, set] = {}
        self.presence_seen: dict[object, str] = {}
        self._presence_timer: asyncio.Handle | None = None
        self._presence_due_at = 0.0
        self._presence_busy = False
        self._presence_again = False
        # Who is typing in each room with local viewers, and its coalesced frames (typing.py).
        self.typing = typing_.Board(self._deliver_typing)
        # Read receipts waiting for their room's next frame, when each room's last went, and
        # the timers that send the waiting ones (receipts_later). ``clock``: tests set it.
        self._receipts: dict[int, list] = {}
        self._receipts_sent: dict[int, float] = {}
        self._receipts_timers: dict[int, asyncio.TimerHandle] = {}
        self.clock = None

    # --- a user's socket: attached while it is open ---------------------------------------------

    async def attach(self, consumer: SocketMember) -> None:
        """Register a user's socket (at once, before any wait: the per-user limit counts it)
        and open the hub, so identity and user events reach it from now on. Raises a
        LAYER_ERRORS exception if the channel layer is unreachable (it is not attached)."""
        self._add_user_socket(consumer)
        self.presence_opened(consumer)
        if self._recently_revoked(consumer):
            self._check_soon(consumer)
        try:
            await self._open()
        except asyncio.CancelledError:
            self._discard_user_socket(consumer)
            self.presence_closed(consumer)
            self._spawn(self._halt_once_open())
            raise
        except BaseException:
            self._discard_user_socket(consumer)
            self.presence_closed(consumer)
            halted = self._halt()
            if halted is not None:
                await self._leave_groups(None, None, halted)
            raise

    async def detach(self, consumer: SocketMember) -> None:
        """The socket has gone (after leaving its rooms): the hub stops if nothing is left."""
        self._discard_user_socket(consumer)
        self.presence_closed(consumer)
        channel = self.channel
        halted = self._halt()
        if halted is not None:
            await self._leave_groups(None, channel, halted)

    async def _halt_once_open(self) -> None:
        """A cancelled attach left the hub opening: stop it once open if nothing came."""
        opening = self._opening
        if opening is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(opening)
        halted = self._halt()
        if halted is not None:
            await self._leave_groups(None, None, halted)

    # --- viewers ----------------------------------------------------------------------------------

    async def join(self, room_id: int, consumer: RoomMember) -> None:
        """Subscribe ``consumer`` to the room. Returns once the process is in the room's group,
        so every event committed afterwards reaches it; raises a LAYER_ERRORS exception if
        the channel layer is unreachable (and the consumer is not subscribed)."""
        room = self._room(room_id)
        # A member before it is subscribed: what arrives meanwhile is held, not missed.
        room.members.add(consumer)
        try:
            await asyncio.shield(room.subscribed)
        except asyncio.CancelledError:
            # This joiner gave up: it leaves at once, and the subscription goes on for the
            # others. If it was the only one, a task of its own undoes the subscription.
            leaving = self._remove(room_id, room, consumer)
            if leaving is not None:
                self._spawn(leaving)
            raise
        except BaseException:
            leaving = self._remove(room_id, room, consumer)
            if leaving is not None:
                await leaving
            raise

    async def leave(self, room_id: int, consumer: RoomMember) -> None:
        room = self.rooms.get(room_id)
        if room is None or consumer not in room.members:
            return
        leaving = self._remove(room_id, room, consumer)
        if leaving is not None:
            await leaving

    def _room(self, room_id: int) -> _Room:
        """The room's entry, made (and its subscription started) if it has none."""
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = _Room()
            room.subscribed = asyncio.ensure_future(self._subscribe(room_id, room))
        return room

    def _remove(self, room_id: int, room: _Room, consumer: RoomMember) -> Coroutine | None:
        room.members.discard(consumer)
        return self._drop(room_id, room)

    def _drop(self, room_id: int, room: _Room) -> Coroutine | None:
        """Once the room has neither viewer nor watcher left, take it out at once. The last
        one out returns what takes the process out of the room's group (and stops the hub
        when nothing is left)."""
        if room.members or room.watchers:
            return None
        current = self.rooms.get(room_id) is room
        if current:
            del self.rooms[room_id]
        # Still subscribing: _subscribe sees that the room has gone and undoes its own add.
        subscribed = current and _succeeded(room.subscribed)
        channel = self.channel
        halted = self._halt()
        if not subscribed and halted is None:
            return None
        return self._leave_groups(room_id if subscribed else None, channel, halted)

    # --- watchers ---------------------------------------------------------------------------------

    async def watch(self, watcher: Watcher, room_ids) -> None:
        """Make ``watcher`` watch exactly these rooms. Returns once the process is in each
        new room's group; raises a LAYER_ERRORS exception if one could not be joined (the
        rooms this call added are then watched no more)."""
        wanted = set(room_ids)
        current = self.watching.setdefault(watcher, set())
        leaving = [self._unwatch(watcher, room_id) for room_id in current - wanted]
        added = []
        for room_id in wanted - current:
            room = self._room(room_id)
            room.watchers.add(watcher)
            current.add(room_id)
            added.append(room_id)
        try:
            outcomes = await asyncio.gather(
                *(asyncio.shield(self.rooms[room_id].subscribed) for room_id in added),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            for room_id in added:
                undo = self._unwatch(watcher, room_id)
                if undo is not None:
                    self._spawn(undo)
            for undo in leaving:
                if undo is not None:
                    self._spawn(undo)
            raise
        failed = [exc for exc in outcomes if isinstance(exc, BaseException)]
        if failed:
            leaving += [self._unwatch(watcher, room_id) for room_id in added]
        for undo in leaving:
            if undo is not None:
                await undo
        if failed:
            raise failed[0]

    def unwatch(self, watcher: Watcher, room_id: int) -> None:
        """Stop watching one room now (its group is left in the background)."""
        undo = self._unwatch(watcher, room_id)
        if undo is not None:
            self._spawn(undo)

    async def unwatch_all(self, watcher: Watcher) -> None:
        for room_id in tuple(self.watching.get(watcher, ())):
            undo = self._unwatch(watcher, room_id)
            if undo is not None:
                await undo
        self.watching.pop(watcher, None)

    def _unwatch(self, watcher: Watcher, room_id: int) -> Coroutine | None:
        current = self.watching.get(watcher)
        if current is not None:
            current.discard(room_id)
        room = self.rooms.get(room_id)
        if room is None or watcher not in room.watchers:
            return None
        room.watchers.discard(watcher)
        if not room.watchers:
            room.forget()
        return self._drop(room_id, room)

    def subscribed_before(self, room_id: int, when: float) -> bool:
        """Was the process in the room's group at loop time ``when`` (and since)? Then a
        snapshot read after ``when`` misses no event: each one after it arrives here."""
        room = self.rooms.get(room_id)
        return room is not None and room.subscribed_at is not None and room.subscribed_at <= when

    def recent(self, room_id: int) -> tuple[deque, int]:
        """The room's recent facts (for replay over a snapshot) and the highest seq dropped
        from them: a snapshot older than that cannot be completed from them."""
        room = self.rooms.get(room_id)
        if room is None:
            return deque(), 0
        return room.recent, room.evicted

    async def _subscribe(self, room_id: int, room: _Room) -> None:
        group = realtime.room_group(room_id)
        try:
            channel = await self._open()
            async with self._group_lock(group):
                if self.rooms.get(room_id) is room:
                    await self.layer.group_add(group, channel)
                    if self.rooms.get(room_id) is room:
                        room.subscribed_at = asyncio.get_running_loop().time()
                        return
                    await self.layer.group_discard(group, channel)  # everyone left meanwhile
        except BaseException:
            if self.rooms.get(room_id) is room:
                del self.rooms[room_id]  # the next joiner tries again
            raise
        # Everyone left before it was done. The last one out could not stop the hub if it was
        # still opening then: that falls to this task.
        halted = self._halt()
        if halted is not None:
            await self._leave_groups(None, None, halted)

    async def _open(self) -> str:
        """The hub's channel, opened once for every room that joins while it opens."""
        opening = self._opening
        if opening is None or (opening.done() and not _succeeded(opening)):
            opening = self._opening = asyncio.ensure_future(self._open_channel())
        return await asyncio.shield(opening)

    async def _open_channel(self) -> str:
        # On the pub/sub layer new_channel awaits a SUBSCRIBE; on the core layer it does not.
        channel = await self.layer.new_channel()
        async with self._group_lock(realtime.USERS_GROUP):  # once per hub start, not per socket
            await self.layer.group_add(realtime.USERS_GROUP, channel)
        self.channel = channel
        self.tasks = [
            asyncio.ensure_future(self._read(channel)),
            asyncio.ensure_future(self._tick()),
        ]
        return channel

    def _halt(self) -> tuple[str | None, list[asyncio.Task]] | None:
        """Stop the hub now if it has no room and no socket left: cancel its tasks and forget
        its channel.
        Returns (the channel to take out of the users group, the tasks to wait for), or None
        when it keeps running — also while it is still opening (the subscription that
        awaits the opening calls this again once it is open)."""
        opening = self._opening
        if self.rooms or self.users or opening is None or not opening.done():
            return None
        self._opening = None
        channel, self.channel = self.channel, None
        tasks, self.tasks = self.tasks, []
        # A cancelled receive may end the channel (the pub/sub layer unsubscribes it): the
        # next start takes a new one.
        for task in tasks:
            task.cancel()
        return (channel if _succeeded(opening) else None), tasks

    async def _leave_groups(
        self,
        room_id: int | None,
        channel: str | None,
        halted: tuple[str | None, list[asyncio.Task]] | None,
    ) -> None:
        """group_discard the room (when given) and, for a halted hub, the users group."""
        try:
            if room_id is not None:
                group = realtime.room_group(room_id)
                async with self._group_lock(group):
                    # A new socket of the room may have joined meanwhile, on this channel:
                    # its subscription is the one that counts now.
                    if room_id not in self.rooms or self.channel != channel:
                        await self.layer.group_discard(group, channel)
            if halted is not None and halted[0] is not None:
                async with self._group_lock(realtime.USERS_GROUP):
                    await self.layer.group_discard(realtime.USERS_GROUP, halted[0])
        except LAYER_ERRORS:  # unreachable: the membership expires after group_expiry
            logger.warning("group_discard of %s failed", channel, exc_info=True)
        finally:
            if halted is not None:
                await _until_cancelled(halted[1])

    @contextlib.asynccontextmanager
    async def _group_lock(self, group: str) -> AsyncIterator[None]:
        """Serialises one group's group_add/group_discard (a leave and a re-join never cross
        in Redis), and only that group's."""
        entry = self._group_locks.get(group)
        if entry is None:
            entry = self._group_locks[group] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._group_locks[group]

    def _spawn(self, coro: Coroutine) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def dispatch(self, event: dict) -> None:
        """``room.change``: the article to every local viewer of its room, the counting facts
        to every local watcher (each built once for all of them)."""
        room = self.rooms.get(event.get("room"))
        if room is None:
            return
        if event["room"] in self.typing.rooms:
            self._typer_posted(event)
        if room.members:
            # One ASGI message for every recipient: servers read it and never change it. (The
            # JSON sockets' one, ``json_frame``, is added to this same event by the first of
            # them it is offered to, and shared by the rest: delivery.JsonWire.live.)
            event["frame"] = realtime.websocket_frame(event["html"])
            for consumer in tuple(room.members):
                try:
                    consumer.offer(event)
                except Exception:
                    logger.exception("delivery to %r failed", consumer)
        if room.watchers:
            fact = unread.Fact.from_event(event)
            if fact is None:
                return  # no meta (an older publisher): the refresh finds the counts behind
            room.remember(fact)
            for watcher in tuple(room.watchers):
                try:
                    watcher.room_change(fact)
                except Exception:
                    logger.exception("counting for %r failed", watcher)

    def room_access(self, event: dict) -> None:
        """``room.access``: these users (None: everyone — the room was deleted) may no longer
        see the room. Their sockets viewing it close with 4403 (nothing more is delivered to
        them); their user streams forget it."""
        users = event.get("users")
        if users is not None and not isinstance(users, list):
            raise ValueError("malformed room.access event")
        room_id = event.get("room")
        room = self.rooms.get(room_id)
        if room is None:
            return
        losing = None if users is None else set(users)
        for consumer in tuple(room.members):
            user_id = getattr(consumer, "user_id", None)
            if user_id is not None and (losing is None or user_id in losing):
                consumer.forbid()
        for watcher in tuple(room.watchers):
            if losing is None or watcher.user_id in losing:
                watcher.lost_room(room_id)

    def room_updated(self, event: dict) -> None:
        """``room.updated``: its name or topic, to every user stream of a viewer or watcher
        of the room (once each), in one frame built once."""
        room = self.rooms.get(event.get("room"))
        if room is None:
            return
        streams = set(room.watchers)
        for consumer in room.members:
            stream = getattr(consumer, "user_stream", None)
            if stream is not None:
                streams.add(stream)
        if not streams:
            return
        frame = delivery.room_frame(event)
        for stream in streams:
            stream.post(frame)

    def room_typing(self, event: dict) -> None:
        """``room.typing``: someone started or stopped typing in a room with viewers here
        (typing.Board keeps the typers and sends the viewers coalesced frames)."""
        room_id = event.get("room")
        room = self.rooms.get(room_id)
        if room is None or not room.members:
            return  # watchers only: the sidebar shows no typing
        user_id, name = event.get("user"), event.get("name")
        if user_id is None or not isinstance(name, str):
            raise ValueError("malformed room.typing event")
        if event.get("stop"):
            self.typing.stop(room_id, user_id)
        else:
            self.typing.start(room_id, user_id, name)

    def _typer_posted(self, event: dict) -> None:
        """A new message: its author is not typing it any more (before the article goes)."""
        meta = event.get("meta") or {}
        if meta.get("kind") == "new" and meta.get("author") is not None:
            self.typing.message(event["room"], meta["author"])

    def _deliver_typing(self, room_id: int, frame: dict) -> None:
        """A typing frame (built once) to the user stream of each local viewer of the room."""
        room = self.rooms.get(room_id)
        if room is None or not room.members:
            self.typing.forget(room_id)
            return
        for consumer in tuple(room.members):
            stream = getattr(consumer, "user_stream", None)
            if stream is not None:
                stream.post(frame)

    def room_read(self, event: dict) -> None:
        """``room.read``: pointers moved by live reading ({user: seq} pairs): each watcher of
        one of those users applies its own (delivery.UserStream.read_to)."""
        room = self.rooms.get(event.get("room"))
        if room is not None and room.members and event.get("receipts") is not None:
            self.receipts_later(event["room"], event["receipts"])
        if room is None or not room.watchers:
            return
        reads = {user_id: seq for user_id, seq in event["reads"]}
        room_id = event["room"]
        for watcher in tuple(room.watchers):
            seq = reads.get(watcher.user_id)
            if seq is not None:
                watcher.read_to(room_id, seq)

    # --- read receipts: the room's pointers, to its viewers, at most once a second -------------

    def receipts_later(self, room_id: int, receipts: list) -> None:
        """A room's read receipts changed (the ``receipts`` of a ``room.read`` event: every
        pointer of its receipt senders, so the newest replaces what is waiting). Sent to the
        room's viewers now, unless the room had a receipts frame in the last
        RECEIPTS_SECONDS: then the newest is sent once that is over (``receipts_due``)."""
        self._receipts[room_id] = receipts
        if room_id in self._receipts_timers:
            return
        wait = self._receipts_sent.get(room_id, float("-inf")) + RECEIPTS_SECONDS - self.now()
        if wait <= 0:
            self.receipts_due(room_id)
        else:
            loop = asyncio.get_running_loop()
            self._receipts_timers[room_id] = loop.call_later(wait, self.receipts_due, room_id)

    def receipts_due(self, room_id: int) -> None:
        """Send the room's waiting receipts: one frame, built once, to each viewer whose user
        sends receipts (``consumer.sends_receipts``, read at connect and on profile change)
        through its user stream (in order with the page's other JSON frames)."""
        timer = self._receipts_timers.pop(room_id, None)
        if timer is not None:
            timer.cancel()
        receipts = self._receipts.pop(room_id, None)
        room = self.rooms.get(room_id)
        if receipts is None or room is None:
            return
        now = self.now()
        if len(self._receipts_sent) > RECEIPTS_SENT_MAX:  # forget the rooms long quiet
            cutoff = now - RECEIPTS_SECONDS
            self._receipts_sent = {r: t for r, t in self._receipts_sent.items() if t > cutoff}
        self._receipts_sent[room_id] = now
        frame = None
        for consumer in tuple(room.members):
            stream = getattr(consumer, "user_stream", None)
            if stream is None or not getattr(consumer, "sends_receipts", False):
                continue
            if frame is None:
                frame = delivery.receipts_frame(room_id, receipts)
            stream.post(frame)

    def now(self) -> float:
        """The hub's clock for coalescing (the loop's; tests replace it)."""
        clock = self.clock
        return clock() if clock is not None else asyncio.get_running_loop().time()

    def read_later(self, room_id: int, user_id, seq: int) -> None:
        """A message was read live by a socket of the user: move their pointer to ``seq`` in
        the next batch (``flush_reads``, within READ_FLUSH_SECONDS)."""
        pending = self._reads.setdefault(room_id, {})
        if seq > pending.get(user_id, 0):
            pending[user_id] = seq
        if self._read_timer is None:
            loop = asyncio.get_running_loop()
            self._read_timer = loop.call_later(READ_FLUSH_SECONDS, self._flush_due)

    def _flush_due(self) -> None:
        self._read_timer = None
        self._spawn(self.flush_reads())

    async def flush_reads(self) -> None:
        """Write the pointers read live since the last batch (services.rooms_read_live). If
        the database is away they are kept for the next batch."""
        reads, self._reads = self._reads, {}
        if not reads:
            return
        try:
            await DatabaseSyncToAsync(
                services.rooms_read_live, thread_sensitive=False, executor=_READS_THREAD
            )(reads)
        except Exception:
            logger.warning("writing %d rooms' live reads failed", len(reads), exc_info=True)
            for room_id, users in reads.items():
                for user_id, seq in users.items():
                    self.read_later(room_id, user_id, seq)

    def user_rooms(self, event: dict) -> None:
        """``user.rooms``: these users' memberships changed; each of their sockets here
        re-reads them (and re-checks the room it views)."""
        users = event.get("users")
        if not isinstance(users, list):
            raise ValueError("malformed user.rooms event")
        for user_id in users:
            for consumer in tuple(self.user_sockets(user_id)):
                consumer.rooms_changed()

    def user_read(self, event: dict) -> None:
        """``user.read``: the user's read state in a room, read after their pointer moved:
        every user stream of theirs here applies it."""
        state = event.get("state")
        if state is None:
            return  # not a member any more: the user.rooms that says so follows
        room_id = event["room"]
        for consumer in tuple(self.user_sockets(event.get("user"))):
            stream = getattr(consumer, "user_stream", None)
            if stream is not None:
                stream.read(room_id, state)

    def directory_changed(self, event: dict) -> None:
        """``directory.changed``: every user stream here tells its page (one frame for all)."""
        frame = delivery.DIRECTORY_FRAME
        for sockets in tuple(self.users.values()):
            for consumer in tuple(sockets):
                stream = getattr(consumer, "user_stream", None)
                if stream is not None:
                    stream.post(frame)

    def user_sockets(self, user_id) -> set:
        return self.users.get(user_id, set())

    def _add_user_socket(self, consumer) -> None:
        user_id = getattr(consumer, "user_id", None)
        if user_id is not None:
            self.users.setdefault(user_id, set()).add(consumer)

    def _discard_user_socket(self, consumer) -> None:
        sockets = self.users.get(getattr(consumer, "user_id", None))
        if sockets is not None:
            sockets.discard(consumer)
            if not sockets:
                del self.users[consumer.user_id]

    def revoke(self, event: dict) -> None:
        """``user.revoke``: close the user's sockets of those sessions (all when None), except
        a session that was only re-keyed (``keep``: old → new), which learns its new key."""
        sessions, keep = event.get("sessions"), event.get("keep") or {}
        if not isinstance(keep, dict) or not (sessions is None or isinstance(sessions, list)):
            raise ValueError("malformed user.revoke event")  # kept out of recent_revocations
        for consumer in tuple(self.user_sockets(event.get("user"))):
            if _applies(event, consumer):
                consumer.revoke()
        now = asyncio.get_running_loop().time()
        self._forget_revocations(now)
        self.recent_revocations.append((now, event))

    def _forget_revocations(self, now: float) -> None:
        recent = self.recent_revocations
        while recent and recent[0][0] < now - RECENT_REVOCATION_SECONDS:
            recent.popleft()

    def _recently_revoked(self, consumer) -> bool:
        """Does a revocation of the last few seconds match this new socket's session? (A keep
        in it updates the socket's key, as it would have for a registered socket.)"""
        if getattr(consumer, "user_id", None) is None or not self.recent_revocations:
            return False
        self._forget_revocations(asyncio.get_running_loop().time())
        matched = False
        for _, event in self.recent_revocations:
            if event.get("user") == consumer.user_id and _applies(event, consumer):
                matched = True
        return matched

    def _check_soon(self, consumer) -> None:
        self.to_check.add(consumer)
        if self.checking is None:
            self.checking = asyncio.ensure_future(self._check_batches())

    async def _check_batches(self) -> None:
        try:
            while self.to_check:
                batch, self.to_check = self.to_check, set()
                # Not those that have gone since.
                batch = [c for c in batch if c in self.user_sockets(c.user_id)]
                try:
                    await self.verify(batch)
                except Exception:  # the database may be away: the periodic re-check
                    logger.exception("session re-check of new sockets failed")
        finally:
            self.checking = None

    def profile_changed(self, event: dict) -> None:
        for consumer in tuple(self.user_sockets(event.get("user"))):
            consumer.profile_refresh(None)

    async def verify(self, sockets: list | None = None) -> None:
        """Re-check the sessions of these local sockets (default: all of them, and then renew
        their per-user leases and re-check what they may see, ``check_access``): expired,
        deleted, password changed, user inactive or gone are closed with 4401; refresh the
        profiles that changed. Two queries and one Redis round trip for the process."""
        renew = sockets is None
        if sockets is None:
            sockets = [consumer for members in self.users.values() for consumer in members]
        if not sockets:
            return
        if renew:
            await socketlimit.renew((consumer.user_id, consumer.socket_id) for consumer in sockets)
        identities = [(consumer.session_key, consumer.user_id) for consumer in sockets]
        valid, users = await database_sync_to_async(identities_still_valid)(identities)
        # Once per user, not per socket: when its profile was last saved.
        updated = {
            user_id: getattr(getattr(user, "profile", None), "updated_at", None)
            for user_id, user in users.items()
        }
        self.presence_privacy(users)
        for consumer, identity in zip(sockets, identities, strict=True):
            if identity in valid:
                consumer.profile_refresh(updated[consumer.user_id])
            elif consumer.session_key == identity[0]:
                # Not re-keyed meanwhile: a keep-revocation that arrived while the query ran
                # gave the socket a new key, which this query never saw.
                consumer.revoke()
        if renew:
            await self.check_access()

    async def check_access(self) -> None:
        """What lost room and user events would leave wrong, from the database: a socket
        viewing a room its user may no longer see (deleted, or a private room they are no
        longer a member of) closes with 4403; a user stream whose rooms, notify settings or
        read pointers are not the database's re-reads them. Two queries for the process."""
        viewers = [
            (room_id, consumer)
            for room_id, room in self.rooms.items()
            for consumer in room.members
            if getattr(consumer, "user_id", None) is not None
        ]
        streams = [
            stream
            for sockets in self.users.values()
            for consumer in sockets
            if (stream := getattr(consumer, "user_stream", None)) is not None
        ]
        if not viewers and not streams:
            return
        user_ids = {consumer.user_id for _, consumer in viewers} | {s.user_id for s in streams}
        room_ids = {room_id for room_id, _ in viewers}
        memberships, rooms = await database_sync_to_async(access_facts)(user_ids, room_ids)
        for room_id, consumer in viewers:
            if not can_see(rooms, memberships, consumer.user_id, room_id):
                consumer.forbid()
        for stream in streams:
            stream.check(memberships.get(stream.user_id, {}))

    async def refresh(self) -> None:
        """Re-join every group (a restarted Redis forgot them; the core layer also expires a
        membership after ``group_expiry``), let each viewer catch up from the database to its
        room's last seq, and re-read the counts of each watcher still behind it a moment later
        (a lost change). One query for all the process's rooms. Each group is re-added under
        its own lock, so a connect waits for no other room's."""
        room_ids = list(self.rooms)
        channel = self.channel
        try:
            if channel is not None:
                async with self._group_lock(realtime.USERS_GROUP):
                    await self.layer.group_add(realtime.USERS_GROUP, channel)
            for room_id in room_ids:
                room = self.rooms.get(room_id)
                if channel is None or self.channel != channel:
                    break  # the hub stopped meanwhile
                if room is None or not _succeeded(room.subscribed):
                    continue  # gone, or still subscribing (which adds it)
                group = realtime.room_group(room_id)
                async with self._group_lock(group):
                    if self.rooms.get(room_id) is room:
                        await self.layer.group_add(group, channel)
        except LAYER_ERRORS:
            logger.warning("channel layer unreachable; catching up from the database")
        if not room_ids:
            return
        last_seqs = await database_sync_to_async(selectors.room_last_seqs)(room_ids)
        viewers, watchers = [], []
        for room_id, last_seq in last_seqs.items():
            room = self.rooms.get(room_id)
            if room is None:
                continue
            viewers.extend((consumer, last_seq) for consumer in room.members)
            for watcher in tuple(room.watchers):
                if watcher.behind(room_id, last_seq):
                    watchers.append((watcher, room_id, last_seq))
        # Not awaited: the read loop calls this after a failed receive, and must not wait.
        self._spawn(self._recover_lost(viewers, watchers))

    async def _recover_lost(
        self, viewers: list[tuple[RoomMember, int]], watchers: list[tuple[Watcher, int, int]]
    ) -> None:
        """After LOST_GRACE_SECONDS: each viewer still behind its room's last seq catches up
        from the database, and the counts still behind it are re-read (one read per watcher,
        of its rooms that are). Not at once: in a busy room the last seq read is usually of a
        message whose event is on its way, and every viewer reading it from the database
        instead would stall the room for everyone."""
        await asyncio.sleep(LOST_GRACE_SECONDS)
        for consumer, last_seq in viewers:
            consumer.catch_up_to(last_seq)
        lost: dict[Watcher, list[int]] = {}
        for watcher, room_id, last_seq in watchers:
            if watcher.behind(room_id, last_seq):
                lost.setdefault(watcher, []).append(room_id)
        for watcher, rooms in lost.items():
            watcher.resync(rooms)

    # --- the two background tasks, running while the hub is open ----------------------------

    async def _read(self, channel: str) -> None:
        delay = 0.1
        while True:
            try:
                event = await self.layer.receive(channel)
            except LAYER_ERRORS:
                logger.warning("channel layer receive failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                await self._refresh_logged()
                continue
            delay = 0.1
            handler = EVENT_HANDLERS.get(event.get("type"))
            if handler is None:
                continue  # a kind this process does not know (yet): not for it
            method, what = handler
            try:  # an odd event must not end the reading loop: the hub would go deaf
                getattr(self, method)(event)
            except Exception:
                logger.exception("%s event %r failed", what, event)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_verify = loop.time() + VERIFY_SECONDS
        while True:
            await asyncio.sleep(TICK_SECONDS * random.uniform(0.75, 1.25))
            await self._refresh_logged()
            try:
                await self.presence_tick()
            except Exception:  # the cache may be away: next tick
                logger.exception("presence refresh failed")
            if loop.time() >= next_verify:
                next_verify = loop.time() + VERIFY_SECONDS
                try:
                    await self.verify()
                except Exception:  # the database may be away: next time
                    logger.exception("session re-check failed")

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception:  # the database may be away too: next tick
            logger.exception("fan-out refresh failed")

    # --- presence (presence.py) ---------------------------------------------------------------

    def presence_opened(self, consumer) -> None:
        user_id = getattr(consumer, "user_id", None)
        if user_id is None:
            return
        self.presence.opened(user_id, consumer.socket_id, presence.clock())
        self._presence_soon(PRESENCE_BATCH_SECONDS)

    def presence_closed(self, consumer) -> None:
        user_id = getattr(consumer, "user_id", None)
        if user_id is None:
            return
        self.presence.closed(user_id, consumer.socket_id, presence.clock())
        self.presence_unwatch(consumer)
        self._presence_soon(presence.CLOSE_GRACE_SECONDS)

    def presence_activity(self, consumer) -> None:
        """``{"type": "activity"}``: the page was used (the page sends one a minute at most)."""
        if self.presence.activity(consumer.user_id, consumer.socket_id, presence.clock()):
            self._presence_soon(PRESENCE_BATCH_SECONDS)

    def presence_privacy(self, users: dict) -> None:
        """The users (with profiles) the session re-check read: their show_presence setting,
        in case an event saying it changed was lost."""
        changed = False
        for user_id, user in users.items():
            profile = getattr(user, "profile", None)
            if profile is not None and self.presence.set_hide(user_id, not profile.show_presence):
                changed = True
        if changed:
            self._presence_soon(PRESENCE_BATCH_SECONDS)

    async def presence_watch(self, consumer, user_ids: list) -> dict:
        """The socket shows these users' dots (at most presence.WATCH_MAX): from now on their
        changes reach it. Returns their current states (one get_many), for its answer."""
        wanted = set(user_ids[: presence.WATCH_MAX])
        current = self.presence_watching.get(consumer, set())
        for user_id in current - wanted:
            self._presence_unwatch_one(consumer, user_id)
        for user_id in wanted - current:
            self.presence_watchers.setdefault(user_id, set()).add(consumer)
        if wanted:
            self.presence_watching[consumer] = wanted
        else:
            self.presence_watching.pop(consumer, None)
        states = await self._presence_io(presence.read, list(wanted))
        for user_id, state in states.items():
            if user_id not in self.presence_seen:
                # Nothing was delivered here about them yet: every socket watching them got
                # (or is getting) its own answer, read at about the same time. (Telling the
                # others this answer too sent thousands of redundant frames when many
                # sockets connect at once.)
                if user_id in self.presence_watchers:
                    self.presence_seen[user_id] = state
                continue
            self._presence_deliver(user_id, state, skip=consumer)  # news for the others
        return states

    def presence_unwatch(self, consumer) -> None:
        for user_id in self.presence_watching.pop(consumer, ()):
            self._presence_unwatch_one(consumer, user_id)

    def _presence_unwatch_one(self, consumer, user_id) -> None:
        watchers = self.presence_watchers.get(user_id)
        if watchers is not None:
            watchers.discard(consumer)
            if not watchers:
                del self.presence_watchers[user_id]
                self.presence_seen.pop(user_id, None)

    def presence_changed(self, event: dict) -> None:
        """``user.presence``: a user's new state, to this process's sockets that show their
        dot (one frame built once); ``hide``, when present, is their new privacy setting."""
        user_id, state = event.get("user"), event.get("presence")
        if state not in presence.STATES:
            raise ValueError("malformed user.presence event")
        hide = event.get("hide")
        if isinstance(hide, bool) and self.presence.set_hide(user_id, hide):
            self._presence_soon(PRESENCE_BATCH_SECONDS)
        self._presence_deliver(user_id, state)

    def _presence_deliver(self, user_id, state: str, skip=None) -> None:
        watchers = self.presence_watchers.get(user_id)
        if not watchers or self.presence_seen.get(user_id) == state:
            return
        self.presence_seen[user_id] = state
        frame = delivery.json_frame({"type": "presence", "user": user_id, "presence": state})
        for consumer in tuple(watchers):
            if consumer is not skip:
                try:
                    consumer.presence_post(frame)
                except Exception:
                    logger.exception("presence delivery to %r failed", consumer)

    def _presence_soon(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        when = loop.time() + max(delay, 0.0)
        timer = self._presence_timer
        if timer is not None:
            # (Its due time is kept here: under uvloop, call_at with a time already past
            # returns a plain Handle, which has no when().)
            if self._presence_due_at <= when:
                return
            timer.cancel()
        self._presence_due_at = when
        self._presence_timer = loop.call_at(when, self._presence_due)

    def _presence_due(self) -> None:
        self._presence_timer = None
        self._spawn(self._presence_flush_logged())

    async def _presence_flush_logged(self) -> None:
        try:
            await self.presence_flush()
        except Exception:
            logger.exception("presence write failed")

    async def _presence_io(self, fn, *args):
        return await DatabaseSyncToAsync(fn, thread_sensitive=False, executor=_PRESENCE_THREAD)(
            *args
        )

    async def presence_flush(self, renew: bool = False) -> None:
        """Write the local users whose level changed (``renew``: all of them, the TTL) in one
        batch; then plan the next one (a grace ending, a socket going idle, a deferred
        broadcast)."""
        if self._presence_busy:
            self._presence_again = True
            return
        self._presence_busy = True
        tracker = self.presence
        try:
            unknown = tracker.unknown_privacy()
            if unknown:
                shown = await self._presence_io(_show_presence, unknown)
                for user_id in unknown:
                    if user_id in tracker.users and tracker.users[user_id].hide is None:
                        tracker.users[user_id].hide = not shown.get(user_id, True)
            now = presence.clock()
            users = list(tracker.users) if renew else tracker.changed(now)
            updates = tracker.updates(users, now)
            if updates:
                written, deferred = await self._presence_io(
                    presence.write, tracker.process, updates, now
                )
                tracker.wrote(written, deferred)
        finally:
            self._presence_busy = False
        if self._presence_again:
            self._presence_again = False
            self._presence_soon(0)
        due = tracker.next_due(presence.clock())
        if due is not None:
            self._presence_soon(due - presence.clock() + 0.05)

    async def presence_tick(self) -> None:
        """Every tick: renew this process's parts (their TTL), and re-read the watched users
        (a lost event, a crashed process whose parts expired)."""
        await self.presence_flush(renew=True)
        watched = list(self.presence_watchers)
        if watched:
            states = await self._presence_io(presence.read, watched)
            for user_id, state in states.items():
                self._presence_deliver(user_id, state)


def _show_presence(user_ids) -> dict:
    """{user id: show_presence} for these users: one query."""
    from apps.profiles.models import Profile

    return dict(
        Profile.objects.filter(user_id__in=list(user_ids)).values_list("user_id", "show_presence")
    )


def access_facts(user_ids, room_ids) -> tuple[dict[object, dict[int, tuple]], dict[int, bool]]:
    """For ``check_access``, in two queries whatever the number of users: each user's
    memberships ({user id: {room id: (notify, last_read_seq)}}) and whether each of these
    rooms is private ({room id: is_private}; a deleted room is missing)."""
    memberships: dict[object, dict[int, tuple]] = {}
    rows = Membership.objects.filter(user_id__in=list(user_ids)).values_list(
        "user_id", "room_id", "notify", "last_read_seq"
    )
    for user_id, room_id, notify, pointer in rows:
        memberships.setdefault(user_id, {})[room_id] = (notify, pointer)
    rooms = {}
    if room_ids:
        rooms = dict(Room.objects.filter(pk__in=list(room_ids)).values_list("pk", "is_private"))
    return memberships, rooms


def can_see(rooms: dict[int, bool], memberships: dict, user_id, room_id: int) -> bool:
    """``Room.objects.visible_to`` (a public room, or one the user is a member of) over the
    rows ``access_facts`` read for many users at once (tested against it)."""
    if room_id not in rooms:
        return False
    return not rooms[room_id] or room_id in memberships.get(user_id, ())


def _applies(event: dict, consumer) -> bool:
    """Does this ``user.revoke`` close the socket? (For a key in ``keep`` it does not, and
    the socket learns its new key.)"""
    sessions, keep = event.get("sessions"), event.get("keep") or {}
    if consumer.session_key in keep:
        consumer.session_key = keep[consumer.session_key]
        return False
    return sessions is None or consumer.session_key in sessions


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """This event loop's hub (one per ASGI process; tests run one loop per test)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        for old in [old for old in _hubs if old.is_closed()]:
            del _hubs[old]
        found = _hubs[loop] = Hub(get_channel_layer())
    return found


def _succeeded(task: asyncio.Task | None) -> bool:
    return task is not None and task.done() and not task.cancelled() and task.exception() is None


async def _until_cancelled(tasks: list[asyncio.Task]) -> None:
    """Wait for cancelled tasks to end, cancelling again those that do not. Python 3.11's
    ``asyncio.wait_for``, which redis-py uses to write each command, returns normally when a
    cancellation arrives just as the write completes (fixed in 3.12): the reading task would
    then go on reading a channel nobody listens to, and this wait would never end."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)
        for task in pending:
            task.cancel()
