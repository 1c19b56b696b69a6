"""Per-process fan-out: one channel-layer subscription per room per process, not per socket.

Every websocket process (each ASGI worker, on one machine or many) has one ``Hub`` per event
loop. The hub owns one channel-layer channel; it joins a room's group when the first local
socket of that room connects and leaves it when the last one goes. ``group_send`` therefore
costs one channel-layer message per process, whatever the number of sockets, and the hub hands
each event — rendered once, by the sender — to its local sockets with no task, queue or
database work per recipient on the common path (``RoomConsumer.offer``).

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
"""

import asyncio
import contextvars
import logging
import random
from collections import deque
from collections.abc import Coroutine

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.accounts.sessions import identities_still_valid

from . import realtime, selectors, socketlimit
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


def start_eagerly(coro: Coroutine) -> asyncio.Task | None:
    """Run ``coro`` now, up to its first real suspension (as Python 3.12's eager tasks do).

    Returns None when it finished without suspending — the common case for a websocket send,
    which only waits when the client's socket buffer is full — or a task that carries it on.
    Fanning a message out to 500 sockets then costs 500 calls, not 500 tasks, and one stalled
    reader never holds up the others. Like a task, it runs in a copy of the caller's context
    (asgiref keeps per-call state in context variables)."""
    context = contextvars.copy_context()
    try:
        waiting_on = context.run(coro.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_carry_on(coro, waiting_on), context=context)


async def _carry_on(coro: Coroutine, waiting_on):
    # What a Task does for a coroutine it drives: wait for the future it yielded, then resume
    # it with the outcome.
    while True:
        try:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                waiting_on._asyncio_future_blocking = False  # as Task.__step does
                await waiting_on
        except GeneratorExit:  # this coroutine is being closed: close the one it drives
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the coroutine, as a Task does
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            waiting_on = coro.send(None)
        except StopIteration as done:
            return done.value


class _Room:
    __slots__ = ("members", "ready")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.members: set = set()
        self.ready: asyncio.Future = loop.create_future()


class Hub:
    """The process's (event loop's) subscriptions. Members are consumers with two methods:
    ``offer(event)`` — synchronous, called once per event — and ``catch_up_to(seq)``; those
    with a ``user_id`` (real sockets) also have ``session_key``, ``socket_id``, ``revoke()``
    and ``profile_refresh(updated_at | None)``."""

    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.in_users_group = False
        self.rooms: dict[int, _Room] = {}
        # The local sockets of each user, for identity events and the per-user limit.
        self.users: dict[object, set] = {}
        # (loop time, user.revoke event) of the last RECENT_REVOCATION_SECONDS, oldest first.
        self.recent_revocations: deque[tuple[float, dict]] = deque()
        # New sockets a recent revocation matched, re-checked in batches by one task.
        self.to_check: set = set()
        self.checking: asyncio.Task | None = None
        # Serialises group_add/group_discard, so a leave and a re-join never cross in Redis.
        self.subscribing = asyncio.Lock()
        self.tasks: list[asyncio.Task] = []

    async def join(self, room_id: int, consumer) -> None:
        """Subscribe ``consumer`` to the room. Returns once the process is in the room's group,
        so every message committed afterwards reaches it; raises a LAYER_ERRORS exception if
        the channel layer is unreachable (and the consumer is not subscribed)."""
        room = self.rooms.get(room_id)
        first = room is None
        if first:
            room = self.rooms[room_id] = _Room(asyncio.get_running_loop())
        # A member before it is subscribed: what arrives meanwhile is held, not missed.
        room.members.add(consumer)
        self._add_user_socket(consumer)
        if self._recently_revoked(consumer):
            self._check_soon(consumer)
        try:
            if first:
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                self._start()
                async with self.subscribing:
                    if not self.in_users_group:  # once per hub start, not per socket
                        await self.layer.group_add(realtime.USERS_GROUP, self.channel)
                        self.in_users_group = True
                    await self.layer.group_add(realtime.room_group(room_id), self.channel)
                room.ready.set_result(None)
            else:
                await asyncio.shield(room.ready)
        except BaseException as exc:
            room.members.discard(consumer)
            self._discard_user_socket(consumer)
            if first:
                if self.rooms.get(room_id) is room:
                    del self.rooms[room_id]
                if isinstance(exc, asyncio.CancelledError):
                    room.ready.cancel()
                else:
                    room.ready.set_exception(exc)
                    room.ready.exception()  # marked retrieved; the waiters get it too
                await self._stop_if_idle()
            raise

    async def leave(self, room_id: int, consumer) -> None:
        room = self.rooms.get(room_id)
        if room is None or consumer not in room.members:
            return
        room.members.discard(consumer)
        self._discard_user_socket(consumer)
        if room.members:
            return
        del self.rooms[room_id]
        channel = self.channel
        leave_users = self.in_users_group and not self.rooms
        stopping = self._stop_if_idle_now()
        try:
            async with self.subscribing:
                await self.layer.group_discard(realtime.room_group(room_id), channel)
                if leave_users:
                    await self.layer.group_discard(realtime.USERS_GROUP, channel)
        except LAYER_ERRORS:  # unreachable: the membership expires after group_expiry
            logger.warning("group_discard of %s failed", channel, exc_info=True)
        finally:
            await asyncio.gather(*stopping, return_exceptions=True)

    def dispatch(self, event: dict) -> None:
        room = self.rooms.get(event.get("room"))
        if room is None:
            return
        # One ASGI message for every recipient: servers read it and never change it.
        event["frame"] = realtime.websocket_frame(event["html"])
        for consumer in tuple(room.members):
            try:
                consumer.offer(event)
            except Exception:
                logger.exception("delivery to %r failed", consumer)

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
        their per-user leases): expired, deleted, password changed, user inactive or gone are
        closed with 4401; refresh the profiles that changed. Two queries and one Redis round
        trip for the process."""
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
        for consumer, identity in zip(sockets, identities, strict=True):
            if identity in valid:
                consumer.profile_refresh(updated[consumer.user_id])
            elif consumer.session_key == identity[0]:
                # Not re-keyed meanwhile: a keep-revocation that arrived while the query ran
                # gave the socket a new key, which this query never saw.
                consumer.revoke()

    async def refresh(self) -> None:
        """Re-join every group (a restarted Redis forgot them) and let each socket catch up
        from the database to its room's last seq. One query for all the process's rooms."""
        room_ids = list(self.rooms)
        if not room_ids:
            return
        try:
            async with self.subscribing:
                await self.layer.group_add(realtime.USERS_GROUP, self.channel)
                for room_id in room_ids:
                    if room_id in self.rooms:
                        await self.layer.group_add(realtime.room_group(room_id), self.channel)
        except LAYER_ERRORS:
            logger.warning("channel layer unreachable; catching up from the database")
        last_seqs = await database_sync_to_async(selectors.room_last_seqs)(room_ids)
        for room_id, last_seq in last_seqs.items():
            room = self.rooms.get(room_id)
            for consumer in tuple(room.members) if room else ():
                consumer.catch_up_to(last_seq)

    # --- the two background tasks, running while the hub has rooms --------------------------

    def _start(self) -> None:
        if not self.tasks:
            self.tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._tick())]

    def _stop_if_idle_now(self) -> list[asyncio.Task]:
        if self.rooms or not self.tasks:
            return []
        tasks, self.tasks = self.tasks, []
        # A cancelled receive may end the channel (the pub/sub layer unsubscribes it): the
        # next start takes a new one.
        self.channel = None
        self.in_users_group = False
        for task in tasks:
            task.cancel()
        return tasks

    async def _stop_if_idle(self) -> None:
        await asyncio.gather(*self._stop_if_idle_now(), return_exceptions=True)

    async def _read(self) -> None:
        delay = 0.1
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except LAYER_ERRORS:
                logger.warning("channel layer receive failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                await self._refresh_logged()
                continue
            delay = 0.1
            kind = event.get("type")
            if kind == realtime.ROOM_CHANGE:
                self.dispatch(event)
                continue
            try:  # an odd event must not end the reading loop: the hub would go deaf
                if kind == "user.revoke":
                    self.revoke(event)
                elif kind == "user.changed":
                    self.profile_changed(event)
            except Exception:
                logger.exception("identity event %r failed", event)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_verify = loop.time() + VERIFY_SECONDS
        while True:
            await asyncio.sleep(TICK_SECONDS * random.uniform(0.75, 1.25))
            await self._refresh_logged()
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
