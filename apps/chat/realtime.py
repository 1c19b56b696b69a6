"""What is published on the channel layer, and how (fanout.py is the receiving end: the hub
subscribes, receives and dispatches). Payloads are primitives: ids and one HTML string rendered
once per change (never per recipient, never in the sender's language).

``emit_on_commit`` is the one place a state change becomes events (after Zulip's
``send_event_on_commit``): services call it inside their transaction; when it commits, each
changed message is rendered once and published to its room's group. Publishing never waits on
the channel layer in the thread that committed — that is the process's one database thread
for websocket work, and a hanging Redis would stall every socket's queries behind it — but is
handed to the process's event loop (``bind_loop``), where it runs as a task."""

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation

from project.cache import OUTAGE_ERRORS

from .models import Message
from .payloads import message_data

logger = logging.getLogger(__name__)

# What a lost channel layer (Redis down or restarting) raises: the project's one outage tuple.
LAYER_ERRORS = OUTAGE_ERRORS


# Every process's hub is in this one group (joined when the hub starts, not per socket or per
# user): identity events are rare, and a group per user would double the Redis work of a
# connect storm. Each hub applies them to its own sockets of that user.
USERS_GROUP = "users"


def room_group(room_id: int) -> str:
    return f"room-{room_id}"


def render_messages_oob(messages: list[Message]) -> str:
    """Message elements wrapped for htmx's out-of-band append into ``#message-list`` (the page
    replaces an article it already has). Rendered in the site's language, whoever triggers it:
    the same bytes go to every reader."""
    with translation.override(settings.LANGUAGE_CODE):
        return render_to_string("chat/room_detail.html#message-oob", {"message_list": messages})


def render_error(text: str, client_id=None, message_id=None) -> str:
    """The ``#composer-error`` fragment: an error for the sender's socket only. ``client_id``
    names the message it refuses to send, ``message_id`` the one it refuses to change (each
    ignored unless a string, or an int for the id)."""
    context = {
        "error": text,
        "client_id": client_id if isinstance(client_id, str) else "",
        "message_id": message_id if isinstance(message_id, (int, str)) else "",
    }
    return render_to_string("chat/room_detail.html#composer-error", context)


def render_reload() -> str:
    """The ``#chat-reload`` fragment: too far behind to catch up over the socket, the page
    reloads its history instead."""
    return render_to_string("chat/room_detail.html#reload", {})


def websocket_frame(html: str) -> dict:
    """The ASGI message that sends ``html`` as a text frame."""
    return {"type": "websocket.send", "text": html}


ROOM_CHANGE = "room.change"


def change_event(message: Message) -> dict:
    """The channel-layer event for the message's current state: ``seq`` is the seq of the
    change it shows (its version). ``meta`` is what a sidebar needs to count it (the same for
    every recipient: each socket applies it to its own read pointer, unread.py). ``data`` is
    the message object (payloads.message_data), for the JSON sockets' frames (``json_text``)."""
    return {
        "type": ROOM_CHANGE,
        "room": message.room_id,
        "id": message.pk,
        "seq": message.version,
        "html": render_messages_oob([message]),
        "meta": change_meta(message),
        "data": message_data(message),
    }


# --- JSON frames (a room socket opened with ?format=json) ----------------------------------

# change_meta's kind -> the JSON frame's type.
JSON_TYPES = {"new": "message", "update": "message_changed", "delete": "message_deleted"}


def dumps(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def json_text(event: dict) -> str | None:
    """A change event's JSON frame: ``{"type": "message" | "message_changed" |
    "message_deleted", "room", "seq", "message"}``. None for an event without ``data`` (an
    older publisher's, in a rolling deploy): the socket reads that change from the
    database."""
    data = event.get("data")
    meta = event.get("meta")
    if data is None or meta is None:
        return None
    kind = JSON_TYPES.get(meta.get("kind"), "message_changed")
    return dumps({"type": kind, "room": event["room"], "seq": event["seq"], "message": data})


def json_message_text(message: Message, after: int) -> str:
    """A caught-up message's JSON frame: ``message`` when it is newer than what the client
    holds (``after``), even if it changed since; ``message_deleted`` for a tombstone; else
    ``message_changed``."""
    if message.deleted_at is not None:
        kind = "message_deleted"
    elif message.seq > after:
        kind = "message"
    else:
        kind = "message_changed"
    payload = {"type": kind, "room": message.room_id, "seq": message.version}
    payload["message"] = message_data(message)
    return dumps(payload)


def json_messages(messages, after: int) -> list[str]:
    """Catch-up frames (one per change, in the order given)."""
    return [json_message_text(message, after) for message in messages]


NOTIFY_TEXT_MAX = 140


def change_meta(message: Message) -> dict:
    """Viewer-independent facts of a change, for unread/mention counting and notifications:

    - ``kind``: "new" (the message was born at this seq), "delete" (it is a tombstone now),
      "update" (anything else: an edit, a reaction, a re-rendered quote);
    - ``msg_seq`` (its position: unread when above a pointer), ``author``;
    - ``mentions`` (user ids) and ``everyone`` (@room) — for a delete, those it had;
    - ``before``: for an edit that changed its mentions, ``{"mentions", "everyone"}`` before;
    - ``author_name``, ``text`` (its first line, plain, cut) and ``room_name`` (a named
      room's name; "" for a direct conversation, or when the room is not in hand): a
      notification's words, for a new message."""
    if message.deleted_at is not None:
        kind = "delete"
    elif message.version == message.seq:
        kind = "new"
    else:
        kind = "update"
    meta = {
        "kind": kind,
        "msg_seq": message.seq,
        "author": message.author_id,
        "mentions": list(getattr(message, "mention_ids", ())),
        "everyone": bool(getattr(message, "mentions_room", False)),
        "before": getattr(message, "mentions_before", None),
    }
    if kind == "new":
        profile = getattr(message.author, "profile", None)
        meta["author_name"] = profile.name if profile is not None else message.author.get_username()
        first = next((line.strip() for line in message.body.splitlines() if line.strip()), "")
        meta["text"] = first[:NOTIFY_TEXT_MAX]
        # The room the service had in hand (never a query here: this runs for every change).
        room = message.room if Message.room.is_cached(message) else None
        meta["room_name"] = room.name if room is not None and room.dm_key is None else ""
    return meta


@dataclass
class Change:
    """The messages one transaction changed, each at its new version, and their events
    (rendered once, on commit — or on first ask, by the acknowledgement to the socket that
    made the change, which then shares them)."""

    room_id: int
    messages: list[Message]
    events: list[dict] | None = None

    def rendered(self) -> list[dict]:
        if self.events is None:
            self.events = [change_event(message) for message in self.messages]
        return self.events


def emit_on_commit(room_id: int, messages: list[Message]) -> Change:
    """Publish these changed messages to the room once the current transaction commits: a
    change is visible to listeners only once it is in the database. If the layer loses it,
    the database still has it, and every socket reads it from there (fanout.Hub.refresh)."""
    change = Change(room_id, list(messages))
    # robust: a failure to render or publish is logged, never raised into the request or
    # socket whose change is already saved (its retry would repeat the change).
    transaction.on_commit(lambda: _publish_change(change), robust=True)
    return change


def _publish_change(change: Change) -> None:
    group = room_group(change.room_id)
    for event in change.rendered():
        publish(group, event, lost=f"change {event['seq']} of room {change.room_id}")


# --- Publishing -----------------------------------------------------------------------------

_loop: asyncio.AbstractEventLoop | None = None


def bind_loop() -> None:
    """Remember the running event loop as the one to publish from (project/asgi.py calls this
    for each connection and request; cheap when it is already bound)."""
    global _loop
    loop = asyncio.get_running_loop()
    if _loop is not loop:
        _loop = loop


def publish(group: str, event: dict, *, lost: str) -> None:
    """group_send without waiting for it. From a worker thread of a running ASGI process the
    send is handed to the event loop; elsewhere (management commands, tests without a loop)
    it runs here. An unreachable layer loses the event, never the change: the database has
    it, and the hubs' periodic work (``refresh`` for room changes, ``verify`` for identity
    events) delivers what it implies. ``lost`` says what was not published, in the warning."""
    loop = _loop
    if loop is not None and loop.is_running() and not loop.is_closed():
        try:
            if _loop_thread_is_current(loop):
                _start_send(group, event, lost)
            else:
                loop.call_soon_threadsafe(_start_send, group, event, lost)
            return
        except RuntimeError:  # the loop closed in between (shutdown): send from here
            pass
    try:
        async_to_sync(get_channel_layer().group_send)(group, event)
    except LAYER_ERRORS:
        logger.warning("%s not published: channel layer unreachable", lost)


def _loop_thread_is_current(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# One outbox and one sending task per (loop, group): a group's events go out one after the
# other, in the order they were committed. Concurrent sends would overtake each other in
# Redis (each is several commands), and every event that arrives before the one it follows
# makes each socket of the room read the gap from the database.
_outboxes: dict[tuple[asyncio.AbstractEventLoop, str], deque] = {}
SLOW_SEND_SECONDS = 0.5
_senders: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task] = {}


def _start_send(group: str, event: dict, lost: str) -> None:
    key = (asyncio.get_running_loop(), group)
    box = _outboxes.setdefault(key, deque())
    box.append((event, lost))
    if key not in _senders:
        _senders[key] = asyncio.ensure_future(_drain(key, box))


async def _drain(key, box: deque) -> None:
    layer = get_channel_layer()
    group = key[1]
    try:
        loop = asyncio.get_running_loop()
        while box:
            event, lost = box[0]
            started = loop.time()
            try:
                await layer.group_send(group, event)
                took = loop.time() - started
                if took > SLOW_SEND_SECONDS:  # the events queued behind it waited as long
                    logger.warning(
                        "publishing to %s took %.2f s (%d queued behind it)",
                        group,
                        took,
                        len(box) - 1,
                    )
            except LAYER_ERRORS:
                logger.warning("%s not published: channel layer unreachable", lost)
            except Exception:
                logger.exception("%s not published", lost)
            finally:
                box.popleft()
    finally:
        del _senders[key]
        if box:
            logger.warning(
                "%d events for %s not published: the send was cancelled", len(box), group
            )
            box.clear()
        del _outboxes[key]


def pending_sends() -> int:
    """Events handed to this loop that are not sent yet (for tests and shutdown)."""
    loop = asyncio.get_running_loop()
    return sum(len(box) for (owner, _group), box in _outboxes.items() if owner is loop)


def _publish_user_event(event: dict) -> None:
    publish(USERS_GROUP, event, lost=f"{event['type']} for user {event['user']}")


def broadcast_sessions_revoked(
    *, user_id: int, sessions: list[str] | None, keep: dict[str, str]
) -> None:
    """Close the open sockets of these sessions of the user (None: of all its sessions), with
    4401, in every process; a socket of a session in ``keep`` stays and learns its new key.
    Called after commit (apps/accounts/sessions.py)."""
    _publish_user_event(
        {"type": "user.revoke", "user": user_id, "sessions": sessions, "keep": keep}
    )


def broadcast_profile_changed(*, user_id: int) -> None:
    """The user's display name or avatar changed: their open sockets drop the profile they
    cached at the handshake, so the next message they send shows the new one."""
    _publish_user_event({"type": "user.changed", "user": user_id})


# --- Membership and read-pointer events ----------------------------------------------------
# Room events go to the room's group (every process with a viewer or a sidebar of that room is
# in it); user events go to USERS_GROUP, where each hub applies them to its own sockets of
# those users. All are published after commit; all may be lost (the hubs' periodic re-check
# and every reconnect re-read the database).

ROOM_ACCESS = "room.access"
ROOM_UPDATED = "room.updated"
USER_ROOMS = "user.rooms"
USER_READ = "user.read"
ROOM_READ = "room.read"
DIRECTORY_CHANGED = "directory.changed"


def _on_commit(publish_it) -> None:
    transaction.on_commit(publish_it, robust=True)


def emit_room_access(room_id: int, user_ids: list[int] | None) -> None:
    """These users (None: everyone — the room was deleted) lost the room: their open sockets
    of it close with 4403 and it leaves their sidebars."""
    event = {"type": ROOM_ACCESS, "room": room_id, "users": user_ids}
    _on_commit(lambda: publish(room_group(room_id), event, lost=f"access change of {room_id}"))


def emit_room_updated(room) -> None:
    """The room's name or topic changed."""
    event = {"type": ROOM_UPDATED, "room": room.pk, "name": room.name, "topic": room.topic}
    _on_commit(lambda: publish(room_group(room.pk), event, lost=f"update of room {room.pk}"))


def emit_user_rooms(user_ids) -> None:
    """These users' room lists changed (joined, left, added, removed, created, a new DM, a
    notify setting): each of their sockets re-reads its memberships."""
    users = sorted({int(user_id) for user_id in user_ids})
    if not users:
        return
    event = {"type": USER_ROOMS, "users": users}
    _on_commit(lambda: publish(USERS_GROUP, event, lost=f"room list change of {users}"))


def emit_user_read(user_id: int, room_id: int) -> None:
    """The user's read pointer in the room moved: after commit, read the room's unread state
    for them (one query, one consistent snapshot) and send it to all their sockets."""

    def committed() -> None:
        from . import selectors  # selectors imports models only; realtime is imported by them

        state = selectors.unread_states(user_id=user_id, room_ids=[room_id]).get(room_id)
        event = {"type": USER_READ, "user": user_id, "room": room_id}
        event["state"] = state.as_dict() if state is not None else None
        publish(USERS_GROUP, event, lost=f"read pointer of {user_id} in {room_id}")

    _on_commit(committed)


def emit_room_read(room_id: int, reads: dict[int, int], receipts: list | None = None) -> None:
    """These users' pointers in the room moved forward by live reading ({user id: seq}): in
    the room's group, one event for all of them (every process with a socket of theirs
    counting the room is in it). ``receipts``: the room's read receipts after the move
    (receipts.receipts_of_rooms), for its viewers (fanout.Hub.room_read); None when the room
    has none or they did not change."""
    event = {"type": ROOM_READ, "room": room_id, "reads": [[u, s] for u, s in reads.items()]}
    if receipts is not None:
        event["receipts"] = receipts
    _on_commit(lambda: publish(room_group(room_id), event, lost=f"live reads in {room_id}"))


def emit_receipts(room_id: int, user_id: int) -> None:
    """The user's pointer in the room moved by an explicit read (services.room_mark_read,
    forward or back): after commit, read the room's receipts (one query) and, if the room has
    them and the user sends them, publish a ``room.read`` event with no live ``reads`` (the
    user's own sockets learn the move from ``user.read``) and the room's ``receipts``."""

    def committed() -> None:
        from . import receipts  # imports models only

        found = receipts.receipts_of_rooms([room_id]).get(room_id)
        if found is None or not any(pair[0] == user_id for pair in found):
            return  # a large room, or a reader who sends no receipts: nothing to show
        event = {"type": ROOM_READ, "room": room_id, "reads": [], "receipts": found}
        publish(room_group(room_id), event, lost=f"receipts of {room_id}")

    _on_commit(committed)


def emit_user_receipts(user_id: int) -> None:
    """The user switched their read receipts on or off: after commit, each of their rooms
    with receipts gets a ``room.read`` event with its receipts as they are now (two queries:
    the user's rooms, their receipts), so their pointer appears in or leaves open pages."""

    def committed() -> None:
        from . import receipts
        from .models import Membership

        room_ids = Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True)
        for room_id, pairs in receipts.receipts_of_rooms(list(room_ids)).items():
            event = {"type": ROOM_READ, "room": room_id, "reads": [], "receipts": pairs}
            publish(room_group(room_id), event, lost=f"receipts of {room_id}")

    _on_commit(committed)


def emit_directory_changed() -> None:
    """A public room was created, renamed or deleted: home pages refetch the directory."""
    event = {"type": DIRECTORY_CHANGED}
    _on_commit(lambda: publish(USERS_GROUP, event, lost="directory change"))
