"""Writes. Each action is one function: access check, validation, save, then broadcast on commit.
The websocket consumer, the HTML views and the API all call these — there is no other path."""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.core import ratelimit, text
from apps.core.ratelimit import RateLimited
from apps.core.text import Wording

from . import realtime
from .models import Membership, Message, Room
from .selectors import room_is_visible_to

__all__ = ["RateLimited", "SendResult", "dm_get_or_create", "message_send", "room_create"]


_ROOM_NAME = Wording(
    not_text=gettext_lazy("Enter a room name."),
    empty=gettext_lazy("Enter a room name."),
    too_long=gettext_lazy("A room name can have at most %(max)d characters."),
    forbidden=gettext_lazy("A room name cannot contain control or invisible characters."),
)
_BODY = Wording(
    not_text=gettext_lazy("The message must be text."),
    empty=gettext_lazy("Type a message first."),
    too_long=gettext_lazy("A message can have at most %(max)d characters (this one has %(len)d)."),
    forbidden=gettext_lazy("A message cannot contain control characters or direction overrides."),
)


def _clean_room_name(name: object) -> str:
    return text.clean_name(
        name, max_length=settings.PARLEY_ROOM_NAME_MAX_LENGTH, wording=_ROOM_NAME
    )


def room_create(*, name, creator) -> Room:
    """Create a public room owned by ``creator``. Names are unique ignoring case."""
    name = _clean_room_name(name)
    count, window = settings.PARLEY_ROOM_CREATE_RATE
    ratelimit.hit(key=f"room-create:{creator.pk}", limit=count, window=window)
    taken = ValidationError(_("A room with this name already exists."), code="unique")
    if Room.objects.public().filter(name__iexact=name).exists():
        raise taken
    try:
        with transaction.atomic():
            room = Room.objects.create(name=name, is_private=False, created_by=creator)
            Membership.objects.create(room=room, user=creator, role=Membership.Role.OWNER)
    except IntegrityError:  # lost a race with another creator: the constraint decides
        raise taken from None
    return room


def dm_get_or_create(*, user, other) -> tuple[Room, bool]:
    """The single private room for the pair (user, other), created on first use.

    Race-safe: ``Room.dm_key`` is unique, so of two concurrent creators one insert fails and
    that caller returns the winner's room."""
    if user.pk == other.pk:
        raise ValidationError(_("You cannot start a conversation with yourself."), code="self")
    low, high = sorted((user.pk, other.pk))
    key = f"{low}:{high}"
    room = Room.objects.filter(dm_key=key).first()
    if room is not None:
        return room, False
    try:
        with transaction.atomic():
            room = Room.objects.create(is_private=True, dm_key=key, created_by=user)
            Membership.objects.bulk_create(
                [
                    Membership(room=room, user=user, role=Membership.Role.OWNER),
                    Membership(room=room, user=other, role=Membership.Role.OWNER),
                ]
            )
    except IntegrityError:
        return Room.objects.get(dm_key=key), False
    return room, True


@dataclass(frozen=True)
class SendResult:
    message: Message
    created: bool  # False when client_id matched an earlier message (an idempotent retry)


def _clean_body(body: object) -> str:
    return text.clean_body(body, max_length=settings.PARLEY_MESSAGE_MAX_LENGTH, wording=_BODY)


def _clean_client_id(client_id) -> uuid.UUID | None:
    if client_id in (None, ""):
        return None
    if isinstance(client_id, uuid.UUID):
        return client_id
    if not isinstance(client_id, str):
        raise ValidationError(_("client_id must be a UUID."), code="invalid")
    try:
        return uuid.UUID(client_id)
    except ValueError:
        raise ValidationError(_("client_id must be a UUID."), code="invalid") from None


class RoomNotFound(Exception):
    """The author may not see the room (or it does not exist): callers answer 404 / 4404."""


def message_send(*, room: Room, author, body, client_id=None) -> SendResult:
    """The only way a message is born.

    Access check → validation → (idempotency) → rate limit → save with the next per-room seq →
    broadcast one rendered fragment to the room's group once the transaction commits."""
    if not room_is_visible_to(room=room, user=author):
        raise RoomNotFound
    body = _clean_body(body)
    client_id = _clean_client_id(client_id)
    if client_id is not None:
        earlier = _message_by_client_id(author=author, client_id=client_id)
        if earlier is not None:
            if earlier.room_id != room.pk:
                raise ValidationError(
                    _("client_id was already used in another room."), code="reused"
                )
            return SendResult(earlier, created=False)
    count, window = settings.PARLEY_MESSAGE_RATE
    ratelimit.hit(key=f"message-send:{author.pk}", limit=count, window=window)
    try:
        with transaction.atomic():
            # UPDATE … SET last_seq = last_seq + 1 takes the room row's write lock until commit,
            # so concurrent senders get consecutive seqs in commit order (no gaps, no reordering).
            now = timezone.now()
            Room.objects.filter(pk=room.pk).update(last_seq=F("last_seq") + 1, last_message_at=now)
            seq = Room.objects.filter(pk=room.pk).values_list("last_seq", flat=True).get()
            message = Message.objects.create(
                room=room, author=author, seq=seq, body=body, client_id=client_id, created_at=now
            )
            transaction.on_commit(lambda: realtime.broadcast_message(message))
    except IntegrityError:
        # Same client_id raced in from another connection: the first one won; acknowledge it.
        earlier = client_id and _message_by_client_id(author=author, client_id=client_id)
        if earlier is None:
            raise
        return SendResult(earlier, created=False)
    room.last_seq, room.last_message_at = seq, now
    return SendResult(message, created=True)


def _message_by_client_id(*, author, client_id) -> Message | None:
    return (
        Message.objects.filter(author=author, client_id=client_id)
        .select_related("author__profile", "room")
        .first()
    )
