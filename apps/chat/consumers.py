"""The room websocket: authenticate, check access and the socket limit, parse JSON, call the
service — and deliver, exactly once and in order, what the hub hands it.

Live messages reach a socket through its process's fan-out hub (fanout.py), not through a
channel-layer channel of its own; the hub also closes it when its session ends."""

import asyncio
import json
import logging
import uuid

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from . import errors, fanout, realtime, selectors, services, socketlimit
from .fanout import start_eagerly
from .models import Room
from .realtime import LAYER_ERRORS

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401  # also: the session ended while the socket was open
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429  # the user has PARLEY_WS_MAX_PER_USER sockets open already
# htmx's ws extension reconnects after this one (and after 1006/1011/1012).
CLOSE_TRY_AGAIN_LATER = 1013
# Past this many missed messages a reconnecting page reloads its history instead.
RESUME_CAP = 500
# Live messages are held for a socket that has not sent its first "resume" yet, at most this
# many and this long; then delivery starts from the room's seq at connect time.
HOLD_MAX = 1000
HOLD_SECONDS = 1.0
# Work queued for a socket that is not keeping up; past it live messages are dropped here and
# read back from the database when the socket drains (the gap check) or on the hub's tick.
BACKLOG_MAX = 1000


# What a service refuses (answered with an error fragment to this socket alone).
REFUSALS = (
    ValidationError,
    services.RateLimited,
    services.NotAllowed,
    services.MessageNotFound,
)


class SendFailed(Exception):
    """Writing to the socket failed: the client has gone."""


def _send_and_render(**kwargs) -> tuple[services.SendResult, dict]:
    """message_send and the fragment for the sender's acknowledgement, in one database-thread
    hop (the fragment is the one the broadcast rendered, when there was one)."""
    result = services.message_send(**kwargs)
    if result.change is not None:
        return result, result.change.rendered()[0]
    return result, realtime.change_event(result.message)  # a retry: the message as it is now


# The change frames: {"type": <kind>, "id": <message id>, ...} → the service and its arguments.
_CHANGES = {
    "edit": (services.message_edit, ("body",)),
    "delete": (services.message_delete, ()),
    "react": (services.reaction_add, ("emoji",)),
    "unreact": (services.reaction_remove, ("emoji",)),
}


def _change_and_render(kind: str, *, room, user, data: dict) -> list[dict]:
    """Run a change frame's service; the events to acknowledge (none when nothing changed)."""
    service, fields = _CHANGES[kind]
    arguments = {field: data.get(field) for field in fields}
    result = service(room=room, user=user, message_id=data.get("id"), **arguments)
    return result.change.rendered() if result.change is not None else []


class RoomConsumer(AsyncWebsocketConsumer):
    """Delivery is exactly-once and in seq order per socket, although the channel layer is
    at-most-once. ``cursor`` is the highest seq this socket has been sent: a live message at or
    below it is a duplicate and dropped; one above ``cursor + 1`` means the layer lost
    something, and the gap is read from the database first. Until the client's first
    ``resume`` there is no cursor and live messages are held, so the catch-up goes first (a
    client that never resumes starts receiving after HOLD_SECONDS).

    Everything sent to the socket goes through one ordered queue of jobs (``_submit``): live
    messages, acknowledgements, catch-ups. A job that does not need to wait — a live message
    in order, to a socket that keeps up — runs to completion inside ``offer``; only the rest
    get a task."""

    # The hub receives from the channel layer for the whole process (fanout.py).
    channel_layer_alias = None

    room: Room | None = None
    joined = False
    # Set when a send fails (the client went away); disconnect() follows, but until it runs
    # nothing more is queued for this socket.
    closed = False
    cursor: int | None = None
    runner: asyncio.Task | bool | None = None
    # Seqs acknowledged to this socket before its stream started (a client that sends before
    # its first "resume"); None, not an empty set, for the usual socket.
    sent_early: set[int] | None = None
    hold_timer: asyncio.TimerHandle | None = None
    # Identity, for the hub's identity events and re-checks (fanout.Hub.revoke / verify).
    user_id = None
    session_key: str | None = None
    socket_id: str = ""
    leased = False  # holds a place in the shared per-user count (socketlimit)
    # Set when the session ended: no frame is acted on any more; the 4401 close is on its way.
    revoked = False
    accepted = False
    closing: asyncio.Task | None = None  # the 4401 close revoke() scheduled

    async def close_for_retry(self, code: int, exc: BaseException) -> None:
        """Close with a code clients retry. uvicorn sends 1012/1013 as asked; daphne's
        websocket library only sends 1000 or 3000-4999 for an application, so there the
        original error goes up and daphne closes with 1011 — which clients retry too."""
        try:
            await self.base_send({"type": "websocket.close", "code": code})
        except Exception:
            raise exc from None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with a 4xxx code: htmx's ws extension does not retry those,
            # while a refused handshake would look like 1006 and be retried forever.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        pk = self.scope["url_route"]["kwargs"]["pk"]
        try:
            room = await database_sync_to_async(selectors.room_get_for_user)(user=user, pk=pk)
        except Room.DoesNotExist:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.user_id = user.pk
        session = self.scope.get("session")  # None only when mounted without the auth stack
        self.session_key = session.session_key if session is not None else None
        self.socket_id = uuid.uuid4().hex
        self.leased = await socketlimit.acquire(
            user_id=self.user_id,
            socket_id=self.socket_id,
            limit=settings.PARLEY_WS_MAX_PER_USER,
            open_here=len(fanout.hub().user_sockets(self.user_id)),
        )
        if not self.leased:
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        try:
            await self._join_and_accept(room)
        finally:
            # Not joined (the layer failed and close_for_retry re-raised, the task was
            # cancelled, anything raised): disconnect() may never run, give the place back now.
            if not self.joined and self.leased:
                self.leased = False
                await socketlimit.release(user_id=self.user_id, socket_id=self.socket_id)

    async def _join_and_accept(self, room: Room) -> None:
        self.room = room
        self.seq_at_connect = self.room.last_seq
        self.held: list[dict] = []
        self.jobs: list = []  # short: a list costs less per socket than a deque
        # Subscribe before accepting: anything committed after this point reaches us live, and
        # anything before it is covered by the client's "resume" query.
        try:
            # No await between the local count above and this: join registers us at once.
            await fanout.hub().join(self.room.pk, self)
        except LAYER_ERRORS as exc:
            # Redis is unreachable right now: accept (a failed handshake would be an HTTP 500)
            # and close with "try again later", which clients retry with backoff.
            await self.accept()
            await self.close_for_retry(CLOSE_TRY_AGAIN_LATER, exc)
            return
        self.joined = True
        await self.accept()
        self.accepted = True
        if self.revoked:  # the session ended during the handshake: close now, not before accept
            await self._close_revoked()
            return
        self.hold_timer = asyncio.get_running_loop().call_later(HOLD_SECONDS, self._hold_expired)

    async def disconnect(self, code) -> None:
        if self.hold_timer is not None:
            self.hold_timer.cancel()
        self.jobs = []
        if isinstance(self.runner, asyncio.Task):
            self.runner.cancel()
        if self.joined:
            self.joined = False
            await fanout.hub().leave(self.room.pk, self)
        if self.leased:
            self.leased = False
            await socketlimit.release(user_id=self.user_id, socket_id=self.socket_id)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.room is None or self.revoked:
            return  # a frame after the session ended is not acted on
        if text_data is None:
            await self.send_error(_("Send text frames with JSON."))
            return
        # The frame cap only bounds parsing work; the message's length is checked on the
        # decoded text by message_send (a 4000-character message in \uXXXX escapes is ~48k).
        if len(text_data) > settings.PARLEY_WS_MAX_FRAME:
            await self.send_error(_("That message is too large."))
            return
        try:
            data = json.loads(text_data)
        except RecursionError:  # [[[[…]]]] nested deeper than the parser's stack
            await self.send_error(_("That JSON is nested too deeply."))
            return
        except ValueError:
            await self.send_error(_("That was not valid JSON."))
            return
        if not isinstance(data, dict):
            await self.send_error(_("Send a JSON object."))
            return
        kind = data.get("type", "message")
        if kind == "message":
            await self.receive_message(data)
        elif kind == "resume":
            await self.receive_resume(data)
        elif isinstance(kind, str) and kind in _CHANGES:
            await self.receive_change(kind, data)
        else:
            await self.send_error(_("Unknown frame type."))

    async def receive_message(self, data: dict) -> None:
        client_id = data.get("client_id")
        try:
            result, event = await database_sync_to_async(_send_and_render)(
                room=self.room,
                author=self.scope["user"],
                body=data.get("body"),
                client_id=client_id,
                reply_to=data.get("reply_to"),
            )
        except services.RoomNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except REFUSALS as exc:
            await self.send_error(errors.describe(exc), client_id=client_id)
            return
        # Acknowledge on this socket without waiting for the channel layer (which may drop
        # it), through the same ordered queue as live messages. A retry of a message stored
        # earlier is acknowledged with the very same fragment, even if this socket had it.
        self._submit(self._ack, (event, result.created))

    async def receive_change(self, kind: str, data: dict) -> None:
        """edit / delete / react / unreact: the service, then the change on this socket at once
        (in order, like any other change), without waiting for the channel layer."""
        try:
            events = await database_sync_to_async(_change_and_render)(
                kind, room=self.room, user=self.scope["user"], data=data
            )
        except services.RoomNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except REFUSALS as exc:
            message_id = data.get("id")
            await self.send_error(errors.describe(exc), message_id=message_id)
            return
        for event in events:
            self._submit(self._ack, (event, True))

    async def receive_resume(self, data: dict) -> None:
        try:
            after = errors.parse_seq(data.get("after_seq", 0))
        except ValidationError as exc:
            await self.send_error(errors.describe(exc))
            return
        # The client says what it holds: send everything after that, then what was held. It
        # cannot hold a seq that did not exist yet; a cursor past the room's end would drop
        # every later message, the sender's own acknowledgements included. Past what this
        # socket knows of, ask the database (rare: a client's mistake, e.g. a message id).
        if after > max(self.seq_at_connect, self.room.last_seq, self.cursor or 0):
            newest = await database_sync_to_async(selectors.room_last_seq)(room=self.room)
            if after > newest:
                await self.send_error(
                    _(
                        "after_seq %(after)d is past the room's newest message (%(newest)d); "
                        "continuing from there."
                    )
                    % {"after": after, "newest": newest}
                )
                after = newest
        self._submit(self._start_from, (after, True))

    async def send_error(self, text: str, client_id=None, message_id=None) -> None:
        context = {
            "error": text,
            "client_id": client_id if isinstance(client_id, str) else "",
            "message_id": message_id if isinstance(message_id, (int, str)) else "",
        }
        html = render_to_string("chat/room_detail.html#composer-error", context)
        await self.send(text_data=html)

    async def dispatch(self, message: dict) -> None:
        # Channels first hops to the database thread to close stale connections
        # (aclose_old_connections), for handlers that use the ORM directly. These reach the
        # database only through database_sync_to_async, which does that itself: no extra hop
        # per incoming frame.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- called by the hub ----------------------------------------------------------------

    def revoke(self) -> None:
        """The session ended (logout, password change, deactivation, deletion, expiry): act on
        no further frame, deliver nothing more, close with 4401 (which clients do not retry)."""
        if self.revoked:
            return
        self.revoked = self.closed = True
        self.jobs, self.held = [], []
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        if isinstance(self.runner, asyncio.Task):
            self.runner.cancel()
        if self.accepted:  # else connect() closes it right after accepting
            self.closing = asyncio.ensure_future(self._close_revoked())

    async def _close_revoked(self) -> None:
        try:
            await self.base_send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED})
        except Exception as exc:  # already gone
            logger.info("closing a revoked socket failed: %r", exc)

    def profile_refresh(self, updated_at) -> None:
        """Forget the profile cached at the handshake unless it was saved at ``updated_at``
        (None: it changed), so the next message this socket sends is rendered with the current
        one. (``Profile.updated_at`` is auto_now: every save moves it.)"""
        user = self.scope["user"]
        cache = user._meta.get_field("profile")  # the reverse one-to-one's cache on the user
        if not cache.is_cached(user):
            return
        cached = cache.get_cached_value(user)
        if updated_at is None or cached is None or cached.updated_at != updated_at:
            cache.delete_cached_value(user)

    def offer(self, event: dict) -> None:
        """A live message for this socket, rendered once by the sender (synchronous)."""
        if self.closed:
            return
        if self.cursor is None:
            if len(self.held) < HOLD_MAX:
                self.held.append(event)
            return  # past HOLD_MAX the resume query finds it in the database
        if (
            self.runner is None
            and not self.jobs
            and not self.sent_early
            and event["seq"] == self.cursor + 1
        ):
            # The common case — in order, nothing queued — without the job queue: one send,
            # with the ASGI message the hub built once for every recipient.
            self.cursor = event["seq"]
            self.runner = True
            try:
                sending = start_eagerly(self.base_send(event["frame"]))
            except Exception as exc:
                self.runner = None
                self._send_failed(exc)
                return
            self.runner = sending
            if sending is not None:  # the client's buffer is full: the rest waits behind it
                sending.add_done_callback(self._sent)
        elif len(self.jobs) < BACKLOG_MAX:
            self._submit(self._deliver, event)

    def _sent(self, sending: asyncio.Task) -> None:
        self.runner = None
        if sending.cancelled():  # disconnect() did that
            return
        if sending.exception() is not None:
            self._send_failed(sending.exception())
        elif self.jobs:
            self._drain()

    def _send_failed(self, exc: BaseException) -> None:
        # The client is gone (uvicorn: ClientDisconnected); disconnect() follows.
        logger.info("send to a socket of %s failed: %r", self.room, exc)
        self.closed = True
        self.jobs = []

    def catch_up_to(self, seq: int) -> None:
        """The room's last seq, read from the database: send what this socket lacks up to it."""
        if self.closed:
            return
        if self.cursor is not None and seq > self.cursor and not self.jobs:
            self._submit(self._catch_up, seq)

    # --- the ordered queue --------------------------------------------------------------------

    def _submit(self, job, arg) -> None:
        self.jobs.append((job, arg))
        if self.runner is None:
            self._drain()

    def _drain(self) -> None:
        """Run the queued jobs now, up to the first real wait; a task carries on from there."""
        self.runner = True  # running, inside this call
        self.runner = start_eagerly(self._run())

    async def _run(self) -> None:
        try:
            while self.jobs:
                job, arg = self.jobs.pop(0)
                try:
                    await job(arg)
                except asyncio.CancelledError:
                    raise
                except SendFailed as exc:
                    self._send_failed(exc.__cause__)
                except Exception:
                    # The database is unreachable: what this socket lacks is sent on the next
                    # live message (the gap check) or the hub's next tick.
                    logger.warning("delivery to %s failed", self.room, exc_info=True)
        finally:
            self.runner = None

    def _hold_expired(self) -> None:
        self.hold_timer = None
        if self.cursor is None:
            self._submit(self._start_from, (self.seq_at_connect, False))

    async def _start_from(self, arg: tuple[int, bool]) -> None:
        seq, catch_up = arg
        if not catch_up and self.cursor is not None:
            return  # a resume came first
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        self.cursor = seq
        if catch_up:
            await self._send_missed(upto=None)
        held, self.held = self.held, []
        for event in sorted(held, key=lambda e: e["seq"]):
            await self._deliver(event)
        if self.sent_early:
            self.sent_early = {seq for seq in self.sent_early if seq > self.cursor} or None

    async def _ack(self, arg: tuple[dict, bool]) -> None:
        event, created = arg
        if self.cursor is not None and event["seq"] > self.cursor:
            await self._deliver(event)  # in order: a gap before it is filled first
        elif self.cursor is None:
            # Before the stream starts (no resume yet): acknowledge now, and remember it, so
            # that neither the held live copy nor a later catch-up sends it a second time.
            if self.sent_early is None:
                self.sent_early = set()
            self.sent_early.add(event["seq"])
            await self._send(event["html"])
        elif not created:
            await self._send(event["html"])  # an ack nothing else would bring

    async def _catch_up(self, seq: int) -> None:
        if seq > self.cursor:
            await self._send_missed(upto=seq)

    async def _deliver(self, event: dict) -> None:
        seq = event["seq"]
        if seq <= self.cursor:
            return  # already sent: a catch-up overlapped the live stream
        if seq > self.cursor + 1:
            await self._send_missed(upto=seq - 1)  # the channel layer dropped something
        if seq > self.cursor:
            self.cursor = seq
            if self.sent_early and seq in self.sent_early:
                self.sent_early.discard(seq)  # acknowledged before the stream started
                return
            await self._send(event["html"])

    async def _send_missed(self, *, upto: int | None) -> None:
        """Send what the database holds after ``cursor`` (up to ``upto``) in one frame."""
        missed = await database_sync_to_async(selectors.message_changes_after)(
            room=self.room, after=self.cursor, limit=RESUME_CAP + 1, upto=upto
        )
        if len(missed) > RESUME_CAP:
            # Too far behind to replay over the socket: the page reloads its history instead.
            self.cursor = await database_sync_to_async(selectors.room_last_seq)(room=self.room)
            await self._send(render_to_string("chat/room_detail.html#reload", {}))
            return
        if not missed:
            return
        last = missed[-1].version
        if self.sent_early:  # acknowledged before the stream started: not again
            missed = [m for m in missed if m.version not in self.sent_early]
        html = await database_sync_to_async(realtime.render_messages_oob)(missed) if missed else ""
        self.cursor = last
        if html:
            await self._send(html)

    async def _send(self, html: str) -> None:
        try:
            await self.base_send(realtime.websocket_frame(html))
        except Exception as exc:
            raise SendFailed from exc
