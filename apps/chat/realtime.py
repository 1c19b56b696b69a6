"""What is published on the channel layer, and how (fanout.py is the receiving end: the hub
subscribes, receives and dispatches). Payloads are primitives: ids and one HTML string rendered
once per message (never per recipient)."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

from project.cache import OUTAGE_ERRORS

from .models import Message

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
    """Message elements wrapped for htmx's out-of-band append into ``#message-list``."""
    return render_to_string("chat/room_detail.html#message-oob", {"message_list": messages})


def render_error(text: str, client_id=None) -> str:
    """The ``#composer-error`` fragment: an error for the sender's socket only. ``client_id``
    names the message it refuses (ignored unless a string)."""
    context = {"error": text, "client_id": client_id if isinstance(client_id, str) else ""}
    return render_to_string("chat/room_detail.html#composer-error", context)


def render_reload() -> str:
    """The ``#chat-reload`` fragment: too far behind to catch up over the socket, the page
    reloads its history instead."""
    return render_to_string("chat/room_detail.html#reload", {})


def websocket_frame(html: str) -> dict:
    """The ASGI message that sends ``html`` as a text frame."""
    return {"type": "websocket.send", "text": html}


def message_event(message: Message) -> dict:
    """The channel-layer event for a message. Rendered once per message object: the broadcast
    and the sender's own acknowledgement share it."""
    event = getattr(message, "_realtime_event", None)
    if event is None:
        event = {
            "type": "chat.message",
            "room": message.room_id,
            "id": message.pk,
            "seq": message.seq,
            "html": render_messages_oob([message]),
        }
        message._realtime_event = event
    return event


def _publish(group: str, event: dict, *, lost: str) -> None:
    """group_send from sync code (on commit). An unreachable layer loses the event, never the
    change: the database has it, and the hubs' periodic work (``refresh`` for messages,
    ``verify`` for identity events) delivers what it implies. ``lost`` says what was not
    published, in the warning."""
    try:
        async_to_sync(get_channel_layer().group_send)(group, event)
    except LAYER_ERRORS:
        logger.warning("%s not published: channel layer unreachable", lost)


def broadcast_message(message: Message) -> None:
    """Publish a committed message to everyone connected to its room. Called on commit only:
    a message is visible to listeners only once it is in the database. If the layer is
    unreachable the message is stored all the same, and every socket reads it from the
    database when the layer is back (fanout.Hub.refresh)."""
    _publish(room_group(message.room_id), message_event(message), lost=f"message {message.pk}")


def _publish_user_event(event: dict) -> None:
    _publish(USERS_GROUP, event, lost=f"{event['type']} for user {event['user']}")


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
