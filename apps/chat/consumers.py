"""The websockets: authenticate, check access and the socket limit, parse JSON, call the
service, send. One socket per tab:

- ``/ws/chat/room/<pk>/`` (``RoomConsumer``) carries the room's stream — HTML fragments,
  exactly once and in order, the socket's ``SocketStream`` (delivery.py) — and, from the
  client's first ``resume`` on (the page sends one as it opens), its user's stream;
- ``/ws/user/`` (``UserConsumer``) carries the user's stream only (every other signed-in page).

The user stream (delivery.UserStream) is JSON frames: unread counts of every room of the user's
memberships, notifications, "the sidebar changed". A client that never resumes (a bot reading a
room) gets the room stream alone.

``/ws/chat/room/<pk>/?format=json`` makes a room socket speak JSON, for programs (bots: an
``Authorization: Bearer`` token, or a cookie session): the same client → server frames and the
same delivery rules (one SocketStream, its ``JsonWire``), but server → client each change is its
own frame ``{"type": "message" | "message_changed" | "message_deleted", "room", "seq",
"message": <the API's message object, payloads.message_data>}``; a resume's catch-up is one
such frame per change, then ``{"type": "caught_up", "room", "seq"}``; a retry the stream has
passed is ``{"type": "ack", "room", "client_id", "id"}``; too far behind is ``{"type":
"reset", "room", "seq"}``; errors are ``{"type": "error", "error": {"code", "message",
"fields"}[, "client_id"][, "id"]}`` (to the sender; the socket stays open). Presence frames as
for pages; no user stream (unread, sidebar, notify, receipts) and no typing line: programs read
those over the API. Any other ``format`` value is refused: accepted, then closed with 4400
(a typo must not silently give HTML to a JSON parser).

Live events reach a socket through its process's fan-out hub (fanout.py), not through a
channel-layer channel of its own; the hub also closes it when its session ends (4401) or its
room is no longer visible to its user (4403)."""

import asyncio
import json
import logging
import uuid
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext as _

from apps.profiles.middleware import socket_language

from . import delivery, errors, fanout, realtime, receipts, selectors, services, socketlimit
from . import typing as typing_
from .delivery import SocketStream, UserStream, receipts_frame
from .models import Room
from .realtime import LAYER_ERRORS

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400  # an unknown ?format= (not "html" or "json")
CLOSE_UNAUTHENTICATED = 4401  # also: the session ended while the socket was open
CLOSE_FORBIDDEN = 4403  # the room it shows is no longer visible (removed, left, deleted)
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


# ?format= of a room socket: "html" (the default: the page's fragments) or "json" (programs).
FORMATS = ("html", "json")


def _query_format(scope: dict) -> str:
    """The handshake's ``format`` query parameter ("html" when there is none; its last value
    when repeated)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("format")
    return values[-1] if values else "html"


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


def _states(user, room: Room | None, room_ids) -> dict[int, dict] | None:
    """The user stream's read: the user's unread states (of ``room_ids``; None: all their
    memberships), one query. For a full read of a socket viewing ``room``: None when that room
    is no longer visible to the user (one query more, only when it is not a membership)."""
    states = selectors.unread_states(user_id=user.pk, room_ids=room_ids)
    if (
        room is not None
        and room_ids is None
        and room.pk not in states
        and not selectors.room_is_visible_to(room=room, user=user)
    ):
        return None
    return {room_id: state.as_dict() for room_id, state in states.items()}


class SocketConsumer(AsyncWebsocketConsumer):
    """What every signed-in socket is: an identity the hub knows (identity and user events,
    the periodic re-checks: a ``fanout.SocketMember``), a place in the per-user socket limit,
    a user stream, and its ends — 4401 when its session ends, 4403 when the room it shows is
    no longer visible."""

    # The hub receives from the channel layer for the whole process (fanout.py).
    channel_layer_alias = None

    room: Room | None = None  # the room it shows (RoomConsumer)
    user_stream: UserStream | None = None  # from its start on
    # Identity, for the hub's identity events and re-checks (fanout.Hub.revoke / verify).
    user_id = None
    language: str = settings.LANGUAGE_CODE  # of what it sends its own user (connect)
    session_key: str | None = None
    socket_id: str = ""
    leased = False  # holds a place in the shared per-user count (socketlimit)
    attached = False  # the hub knows it (fanout.Hub.attach)
    ready = False  # attached and subscribed: disconnect() undoes the rest
    # Set when it ended (session, access): no frame is acted on any more, nothing more is
    # delivered; the close (``end_code``) is on its way.
    revoked = False
    end_code: int | None = None
    accepted = False
    json_frames = False  # a room socket opened with ?format=json (RoomConsumer)
    closing: asyncio.Task | None = None  # the close _end() scheduled
    checking: asyncio.Task | None = None  # a re-check of the room's visibility

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
        if not await self.find(user):
            return
        self.user_id = user.pk
        # Errors and notices to this user in their language (issue 14): the profile's saved
        # choice, else the handshake's cookie / Accept-Language. Never for broadcasts.
        self.language = await database_sync_to_async(socket_language)(user, self.scope)
        session = self.scope.get("session")  # None only when mounted without the auth stack
        # What the revocations and re-checks name: the session's key, or for a socket that
        # authenticated by access token, the token's (project/websocket_auth.py).
        self.session_key = self.scope.get("identity") or (
            session.session_key if session is not None else None
        )
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
            await self._join_and_accept()
        finally:
            # Not joined (the layer failed and close_for_retry re-raised, the task was
            # cancelled, anything raised): disconnect() may never run, undo it all now.
            if not self.ready:
                await self._leave_hub()

    async def find(self, user) -> bool:
        """What the socket is about, read before it counts as open: False if it was closed
        for it (RoomConsumer: the room, 4404)."""
        return True

    async def _join_and_accept(self) -> None:
        hub = fanout.hub()
        # Subscribe before accepting: anything committed after this point reaches us live, and
        # anything before it is covered by the client's "resume" query (and the user stream's
        # read).
        try:
            # No await between the local count above and this: attach registers us at once.
            await hub.attach(self)
            self.attached = True
            await self.subscribe(hub)
        except LAYER_ERRORS as exc:
            # Redis is unreachable right now: accept (a failed handshake would be an HTTP 500)
            # and close with "try again later", which clients retry with backoff.
            await self._leave_hub()
            await self.accept()
            await self.close_for_retry(CLOSE_TRY_AGAIN_LATER, exc)
            return
        self.ready = True
        await self.accept()
        self.accepted = True
        if self.revoked:  # it ended during the handshake: close now, not before accept
            await self._close_ended()
            return
        self.opened()

    async def subscribe(self, hub: fanout.Hub) -> None:
        """Join what it needs of the hub beyond being attached (RoomConsumer: its room)."""

    def opened(self) -> None:
        """Accepted and live (UserConsumer: the user stream starts)."""

    def start_user_stream(self) -> None:
        if self.user_stream is not None or self.revoked:
            return
        self.user_stream = UserStream(
            user_id=self.user_id,
            send=self.base_send,
            load=self._load_states,
            hub=fanout.hub(),
            forbidden=self.forbid,
            label=f"user {self.user_id}",
        )
        self.user_stream.start()

    async def _load_states(self, room_ids) -> dict[int, dict] | None:
        return await database_sync_to_async(_states)(self.scope["user"], self.room, room_ids)

    async def _leave_hub(self) -> None:
        """Out of everything the hub has it in, and its place in the limit back."""
        hub = fanout.hub()
        self.ready = False
        if self.checking is not None:
            self.checking.cancel()
        if self.user_stream is not None:
            self.user_stream.close()
            await hub.unwatch_all(self.user_stream)
        await self.unsubscribe(hub)
        if self.attached:
            self.attached = False
            await hub.detach(self)
        if self.leased:
            self.leased = False
            await socketlimit.release(user_id=self.user_id, socket_id=self.socket_id)

    async def unsubscribe(self, hub: fanout.Hub) -> None:
        """Undo ``subscribe``."""

    async def disconnect(self, code) -> None:
        await self._leave_hub()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        with translation.override(self.language):
            await self.receive_text_frame(text_data)

    async def receive_text_frame(self, text_data) -> None:
        if self.revoked or not self.ready:
            return  # a frame after the session ended is not acted on
        if text_data is None:
            await self.send_error(_("Send text frames with JSON."), code="parse_error")
            return
        # The frame cap only bounds parsing work; the message's length is checked on the
        # decoded text by message_send (a 4000-character message in \uXXXX escapes is ~48k).
        if len(text_data) > settings.PARLEY_WS_MAX_FRAME:
            await self.send_error(_("That message is too large."), code="payload_too_large")
            return
        try:
            data = json.loads(text_data)
        except RecursionError:  # [[[[…]]]] nested deeper than the parser's stack
            await self.send_error(_("That JSON is nested too deeply."), code="parse_error")
            return
        except ValueError:
            await self.send_error(_("That was not valid JSON."), code="parse_error")
            return
        if not isinstance(data, dict):
            await self.send_error(_("Send a JSON object."), code="parse_error")
            return
        await self.receive_frame(data.get("type", "message"), data)

    async def receive_frame(self, kind, data: dict) -> None:
        if not await self.receive_presence_frame(kind, data):
            await self.send_error(_("Unknown frame type."), field="type")

    # --- presence (presence.py): the page's activity and the dots it shows ---------------------

    async def receive_presence_frame(self, kind, data: dict) -> bool:
        """``{"type": "activity"}`` (the page was used; it sends one a minute at most) and
        ``{"type": "presence-watch", "users": [ids]}`` (the dots the page shows, answered with
        ``{"type": "presence", "states": {id: state}}``, then live ``{"type": "presence",
        "user", "presence"}`` frames). False for any other kind."""
        if kind == "activity":
            fanout.hub().presence_activity(self)
        elif kind == "presence-watch":
            users = data.get("users")
            if not isinstance(users, list):
                await self.send_error(_("presence-watch needs a list of user ids."), field="users")
                return True
            ids = [u for u in users if isinstance(u, int) and not isinstance(u, bool)]
            states = await fanout.hub().presence_watch(self, ids)
            answer = {"type": "presence", "states": {str(u): s for u, s in states.items()}}
            self.presence_post(delivery.json_frame(answer))
        else:
            return False
        return True

    def presence_post(self, frame: dict) -> None:
        """A presence frame (built once for every recipient): through the user stream when
        there is one (in order with its frames), else straight to the socket."""
        if self.revoked:
            return
        if self.user_stream is not None:
            self.user_stream.post(frame)
        else:
            task = asyncio.ensure_future(self.base_send(frame))
            task.add_done_callback(_ignore_send_failure)

    async def send_error(
        self, text: str, client_id=None, message_id=None, *, code="invalid", field=None
    ) -> None:
        """An error for this socket alone (it stays open): the ``#composer-error`` fragment,
        or on a JSON socket ``{"type": "error", "error": {"code", "message", "fields"}}``
        (``field``: the frame's key it is about), with the ``client_id`` / ``id`` it names."""
        message_id = _named_id(message_id)
        if self.json_frames:
            # As the API words it: an error about one input is "<input>: <its message>".
            fields = {field: [text]} if field else None
            if isinstance(message_id, str):
                message_id = int(message_id)
            text_data = delivery.json_error(
                f"{field}: {text}" if field else text,
                code=code,
                fields=fields,
                client_id=client_id,
                message_id=message_id,
            )
        else:
            text_data = realtime.render_error(text, client_id, message_id)
        await self.send(text_data=text_data)

    async def send_refusal(
        self, exc: Exception, client_id=None, message_id=None, field=None, frame=None
    ):
        """A service's refusal (REFUSALS), with its code (errors.code_of). As in the API's
        answers: a code that only names the input it is about (``reply_to``, ``emoji``: a key
        of the refused ``frame``) is "invalid", with the error under that key in ``fields``."""
        code = errors.code_of(exc)
        if field is None and isinstance(frame, dict) and code in frame and code != "type":
            code, field = "invalid", code
        await self.send_error(errors.describe(exc), client_id, message_id, code=code, field=field)

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
        self._end(CLOSE_UNAUTHENTICATED)

    def forbid(self) -> None:
        """Its user may no longer see the room it shows (removed from a private group, left
        it, the room deleted): act on no further frame, deliver nothing more, close with
        4403 (not retried)."""
        self._end(CLOSE_FORBIDDEN)

    def _end(self, code: int) -> None:
        if self.revoked:
            return
        self.revoked = True
        self.end_code = code
        self.stop_streams()
        if self.accepted:  # else connect() closes it right after accepting
            self.closing = asyncio.ensure_future(self._close_ended())

    def stop_streams(self) -> None:
        if self.user_stream is not None:
            self.user_stream.close()

    async def _close_ended(self) -> None:
        try:
            await self.base_send({"type": "websocket.close", "code": self.end_code})
        except Exception as exc:  # already gone
            logger.info("closing an ended socket failed: %r", exc)
        # Out of the hub now, not when the server reports the disconnect: an ended socket
        # holds no subscription, no watch and no place in the per-user limit.
        await self._leave_hub()

    def rooms_changed(self) -> None:
        """The user's memberships changed: the user stream reads them again (and re-checks
        the room it shows)."""
        if self.user_stream is not None:
            self.user_stream.rooms_changed()

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


def _ignore_send_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("a presence frame was not sent: %r", task.exception())


class UserConsumer(SocketConsumer):
    """``/ws/user/``: the user's stream alone, from the handshake on (every signed-in page
    that shows no room). It takes the presence frames only (``receive_presence_frame``)."""

    def opened(self) -> None:
        self.start_user_stream()


class RoomConsumer(SocketConsumer):
    """One socket of one room. To the hub it is a ``fanout.SocketMember``: ``offer`` and
    ``catch_up_to`` go to its stream; and, from its first ``resume``, its user stream
    watches the user's rooms."""

    stream: SocketStream | None = None  # from the join on
    joined = False
    typing_gate: typing_.SocketGate | None = None  # from its first typing frame on
    # Does its user send (and so see) read receipts? The hub gives receipts frames only to
    # viewers that do (read at connect, again when the profile changes).
    sends_receipts = False
    receipts_at = None  # the profile's updated_at when it was read
    receipts_checking: asyncio.Task | None = None

    async def find(self, user) -> bool:
        wire_format = _query_format(self.scope)
        if wire_format not in FORMATS:
            await self.accept()
            await self.close(code=CLOSE_BAD_REQUEST)
            return False
        self.json_frames = wire_format == "json"
        pk = self.scope["url_route"]["kwargs"]["pk"]
        try:
            self.room = await database_sync_to_async(selectors.room_get_for_user)(user=user, pk=pk)
        except Room.DoesNotExist:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return False
        setting = await database_sync_to_async(receipts.receipt_setting)(user.pk)
        self.sends_receipts, self.receipts_at = setting
        return True

    def profile_refresh(self, updated_at) -> None:
        """Also re-read the receipts setting when the profile changed: None (a user.changed
        event) or an ``updated_at`` other than the one read (the periodic re-check; no query
        when it is the same)."""
        super().profile_refresh(updated_at)
        changed = updated_at is None or updated_at != self.receipts_at
        if changed and self.receipts_checking is None and not self.revoked:
            self.receipts_checking = asyncio.ensure_future(self._check_receipts())

    async def _check_receipts(self) -> None:
        """The user switched receipts off: the page clears them (an empty receipts frame);
        on: the room's receipts as they are now (one query; none for a large room)."""
        try:
            was = self.sends_receipts
            setting = await database_sync_to_async(receipts.receipt_setting)(self.user_id)
            now, self.receipts_at = setting
            self.sends_receipts = now
            if now == was or self.user_stream is None or self.revoked:
                return
            pairs = []
            if now:
                found = await database_sync_to_async(receipts.receipts_of_rooms)([self.room.pk])
                pairs = found.get(self.room.pk)
            if pairs is not None:
                self.user_stream.post(receipts_frame(self.room.pk, pairs))
        except Exception:  # the database is away: the next profile check
            logger.warning("re-reading the receipts setting failed", exc_info=True)
        finally:
            self.receipts_checking = None

    async def subscribe(self, hub: fanout.Hub) -> None:
        room = self.room
        if self.json_frames:
            wire = delivery.JsonWire(room.pk, database_sync_to_async(realtime.json_messages))
        else:
            wire = delivery.HtmlWire(database_sync_to_async(realtime.render_messages_oob))
        self.stream = SocketStream(
            send=self.base_send,
            load=self._load_changes,
            last_seq=self._last_seq,
            seq_at_connect=room.last_seq,
            label=room,
            wire=wire,
        )
        await hub.join(room.pk, self)
        self.joined = True

    async def unsubscribe(self, hub: fanout.Hub) -> None:
        if self.stream is not None:
            self.stream.close()
        gate = self.typing_gate
        if gate is not None and gate.allowed and gate.active:
            # Typing in a tab that closed: the line clears now rather than at expiry.
            gate.active = False
            name = typing_.cached_name(self.scope["user"]) or ""
            typing_.publish(room_id=self.room.pk, user_id=self.user_id, name=name, stop=True)
        if self.joined:
            self.joined = False
            await hub.leave(self.room.pk, self)

    def opened(self) -> None:
        self.stream.start_holding()

    def stop_streams(self) -> None:
        super().stop_streams()
        if self.stream is not None:
            self.stream.close()

    async def _load_changes(self, after: int, upto: int | None, limit: int) -> list:
        return await database_sync_to_async(selectors.message_changes_after)(
            room=self.room, after=after, limit=limit, upto=upto
        )

    async def _last_seq(self) -> int:
        return await database_sync_to_async(selectors.room_last_seq)(room=self.room)

    async def receive_frame(self, kind, data: dict) -> None:
        if kind == "message":
            await self.receive_message(data)
        elif kind == "resume":
            await self.receive_resume(data)
        elif kind == "read":
            await self.receive_read(data)
        elif kind == "active":
            await self.receive_active(data)
        elif kind == "inactive":
            if self.user_stream is not None:
                self.user_stream.live_room = None
        elif isinstance(kind, str) and kind in _CHANGES:
            await self.receive_change(kind, data)
        elif await self.receive_presence_frame(kind, data):
            pass
        elif kind == "typing":
            await self.receive_typing(data)
        else:
            await self.send_error(_("Unknown frame type."), field="type")

    async def receive_message(self, data: dict) -> None:
        client_id = data.get("client_id")
        if self.typing_gate is not None:
            # Its message ends the typing (each hub drops the author when it arrives): the
            # page's next keystroke is a new start, admitted at once.
            self.typing_gate.active = False
        try:
            result, event = await database_sync_to_async(_send_and_render)(
                room=self.room,
                author=self.scope["user"],
                body=data.get("body"),
                client_id=client_id,
                reply_to=data.get("reply_to"),
                attachments=data.get("attachments"),
            )
        except services.RoomNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except REFUSALS as exc:
            await self.send_refusal(exc, client_id=client_id, frame=data)
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
            await self.send_refusal(exc, message_id=message_id, frame=data)
            return
        for event in events:
            self.stream.acknowledge(event, True)

    async def receive_typing(self, data: dict) -> None:
        """``{"type": "typing"[, "stop": true]}``: an ephemeral signal to the room's viewers
        (typing.py). Extras past the socket's allowance are dropped without an answer; the
        first admitted frame asks once whether the user may post here and the room is small
        enough (else a ``typing_off`` notice, once)."""
        stop = data.get("stop", False)
        if not isinstance(stop, bool):
            await self.send_error(_("A typing frame's stop must be true or false."), field="stop")
            return
        gate = self.typing_gate
        if gate is None:
            gate = self.typing_gate = typing_.SocketGate()
        if gate.allowed is False or not gate.admit(stop, asyncio.get_running_loop().time()):
            return
        user = self.scope["user"]
        name = typing_.cached_name(user)
        if gate.allowed is None or name is None:
            allowed, small, name = await database_sync_to_async(self._typing_facts)(gate)
            if gate.allowed is None:
                gate.allowed = allowed and small
                if allowed and not small and not gate.told:
                    gate.told = True
                    await self.send(text_data=typing_.off_frame(self.room.pk))
            if not gate.allowed:
                return
        typing_.publish(room_id=self.room.pk, user_id=self.user_id, name=name, stop=stop)

    def _typing_facts(self, gate: typing_.SocketGate) -> tuple[bool, bool, str]:
        """(may post, small enough, display name): the access query only the first time."""
        user = self.scope["user"]
        allowed, small = (True, True) if gate.allowed else (False, False)
        if gate.allowed is None:
            allowed, small = typing_.may_type(room=self.room, user=user)
        return allowed, small, typing_.display_name(user)

    async def receive_active(self, data: dict) -> None:
        """``{"type": "active", "seq": N}``: the page is focused and shows the newest
        messages: read up to N, and from now on read each new message as it comes (the user
        stream's ``live_room``; the hub writes those pointers in batches) until
        ``{"type": "inactive"}`` — no unread frame and no notification for this room
        meanwhile. Answered with the room's ``unread`` frame (the state it starts from). Not
        a member: nothing to read, no answer. When the user stream's counts already have the
        pointer at N or past it (a page that opens a room it has read), no database work."""
        try:
            seq = errors.parse_seq(data.get("seq"), name="seq")
        except ValidationError as exc:
            await self.send_refusal(exc, field="seq")
            return
        stream = self.user_stream
        if stream is not None and await stream.settled():
            counts = stream.counts.get(self.room.pk)
            if counts is None:
                return  # not a member (as the stream's last read of the memberships says)
            if counts.pointer >= seq:
                stream.live_room = self.room.pk
                stream.answer(self.room.pk)
                return
        state = await self._mark_read(seq, force=False)
        stream = self.user_stream
        if state is not None and stream is not None:
            stream.live_room = self.room.pk
            stream.read(self.room.pk, state.as_dict(), answer=True)

    async def receive_read(self, data: dict) -> None:
        """``{"type": "read", "seq": N[, "force": true]}``: move the user's read pointer in
        this room (services.room_mark_read). Not a member (a public room not joined): nothing
        to move, no answer. The new state reaches this socket's user stream at once, and every
        other socket of the user through the ``user.read`` event. "Mark as unread" (force)
        ends live reading."""
        force = data.get("force", False)
        if force is True and self.user_stream is not None:
            self.user_stream.live_room = None
        state = await self._mark_read(data.get("seq"), force=force)
        if self.user_stream is not None and state is not None:
            self.user_stream.read(self.room.pk, state.as_dict())

    async def _mark_read(self, seq, *, force):
        """services.room_mark_read; None when there is nothing to answer (not a member, too
        many reads: the page's next read covers it, a bad seq: an error fragment)."""
        try:
            return await database_sync_to_async(services.room_mark_read)(
                room=self.room, user=self.scope["user"], seq=seq, force=force
            )
        except (services.NotAllowed, services.RateLimited):
            return None
        except services.RoomNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
        except ValidationError as exc:
            await self.send_refusal(exc, field="seq")
        return None

    async def receive_resume(self, data: dict) -> None:
        try:
            after = errors.parse_seq(data.get("after_seq", 0))
        except ValidationError as exc:
            await self.send_refusal(exc, field="after_seq")
            return
        # The page resumes as it opens: its user stream starts with that (and with who is
        # typing in the room now, as far as this process has seen). A JSON socket has none.
        fresh = self.user_stream is None
        if not self.json_frames:
            self.start_user_stream()
        if fresh and self.user_stream is not None:
            typing_now = fanout.hub().typing.current(self.room.pk)
            if typing_now is not None:
                self.user_stream.post(typing_now)
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
                    % {"after": after, "newest": newest},
                    field="after_seq",
                )
                after = newest
        stream.resume(after)

    # --- called by the hub ----------------------------------------------------------------

    def rooms_changed(self) -> None:
        """The user's memberships changed: the user stream reads them again and re-checks
        the room with them; without one, the room alone is re-checked (a private room only:
        a public one stays visible to everyone, and its deletion sends room.access)."""
        if self.user_stream is not None:
            self.user_stream.rooms_changed()
        elif self.room.is_private and self.checking is None and not self.revoked:
            self.checking = asyncio.ensure_future(self._check_room())

    async def _check_room(self) -> None:
        try:
            visible = await database_sync_to_async(selectors.room_is_visible_to)(
                room=self.room, user=self.scope["user"]
            )
        except Exception:  # the database is away: the periodic re-check
            logger.warning("re-checking the room of a socket failed", exc_info=True)
            return
        finally:
            self.checking = None
        if not visible:
            self.forbid()

    def offer(self, event: dict) -> None:
        """A live event for this socket, rendered once by the sender (synchronous)."""
        self.stream.offer(event)

    def catch_up_to(self, seq: int) -> None:
        """The room's last seq, read from the database: send what this socket lacks up to it."""
        self.stream.catch_up_to(seq)
