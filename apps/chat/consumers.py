"""The room websocket: authenticate, check access and the socket limit, parse JSON, call the
service, send. Delivery — exactly once and in order — is the socket's ``SocketStream``
(delivery.py), given this socket's I/O.

Live events reach a socket through its process's fan-out hub (fanout.py), not through a
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
from django.utils.translation import gettext as _

from . import errors, fanout, realtime, selectors, services, socketlimit
from .delivery import SocketStream
from .models import Room
from .realtime import LAYER_ERRORS

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401  # also: the session ended while the socket was open
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429  # the user has PARLEY_WS_MAX_PER_USER sockets open already
# htmx's ws extension reconnects after this one (and after 1006/1011/1012).
CLOSE_TRY_AGAIN_LATER = 1013


# What a service refuses (answered with an error fragment to this socket alone).
REFUSALS = (
    ValidationError,
    services.RateLimited,
    services.NotAllowed,
    services.MessageNotFound,
)


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


def _named_id(value) -> int | str | None:
    """The message id a refused change frame named, as the error fragment may repeat it: an
    int (not a bool: ``True`` is an int to Python) or a string of ASCII digits; else none."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    return None


def _change_and_render(kind: str, *, room, user, data: dict) -> list[dict]:
    """Run a change frame's service; the events to acknowledge (none when nothing changed)."""
    service, fields = _CHANGES[kind]
    arguments = {field: data.get(field) for field in fields}
    result = service(room=room, user=user, message_id=data.get("id"), **arguments)
    return result.change.rendered() if result.change is not None else []


class RoomConsumer(AsyncWebsocketConsumer):
    """One socket of one room. To the hub it is a ``fanout.SocketMember``: ``offer`` and
    ``catch_up_to`` go to its stream, ``revoke`` and ``profile_refresh`` are its own."""

    # The hub receives from the channel layer for the whole process (fanout.py).
    channel_layer_alias = None

    room: Room | None = None
    stream: SocketStream | None = None  # from the join on
    joined = False
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
        self.stream = SocketStream(
            send=self.base_send,
            load=self._load_changes,
            render=database_sync_to_async(realtime.render_messages_oob),
            last_seq=self._last_seq,
            seq_at_connect=room.last_seq,
            label=room,
        )
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
        self.stream.start_holding()

    async def _load_changes(self, after: int, upto: int | None, limit: int) -> list:
        return await database_sync_to_async(selectors.message_changes_after)(
            room=self.room, after=after, limit=limit, upto=upto
        )

    async def _last_seq(self) -> int:
        return await database_sync_to_async(selectors.room_last_seq)(room=self.room)

    async def disconnect(self, code) -> None:
        if self.stream is not None:
            self.stream.close()
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
        # earlier is acknowledged too, even if this socket had it (delivery.render_ack).
        client_id = result.message.client_id
        self.stream.acknowledge(event, result.created, str(client_id) if client_id else None)

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
            self.stream.acknowledge(event, True)

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
        stream = self.stream
        if after > max(stream.seq_at_connect, self.room.last_seq, stream.cursor or 0):
            newest = await self._last_seq()
            if after > newest:
                await self.send_error(
                    _(
                        "after_seq %(after)d is past the room's newest message (%(newest)d); "
                        "continuing from there."
                    )
                    % {"after": after, "newest": newest}
                )
                after = newest
        stream.resume(after)

    async def send_error(self, text: str, client_id=None, message_id=None) -> None:
        await self.send(text_data=realtime.render_error(text, client_id, _named_id(message_id)))

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
        self.revoked = True
        if self.stream is not None:
            self.stream.close()
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
        """A live event for this socket, rendered once by the sender (synchronous)."""
        self.stream.offer(event)

    def catch_up_to(self, seq: int) -> None:
        """The room's last seq, read from the database: send what this socket lacks up to it."""
        self.stream.catch_up_to(seq)
