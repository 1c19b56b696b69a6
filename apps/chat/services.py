"""Writes. Each action is one function: access check, validation, save, then events on commit.
The websocket consumer, the HTML views and the API all call these — there is no other path.

Every change to a room's timeline — a message sent, edited or deleted, a reaction added or
removed — takes the room's next seq (``_take_seqs``, under the room row's write lock) and
becomes the changed message's ``version``. ``realtime.emit_on_commit`` then publishes each
change's rendered article once the transaction commits, so catch-up after any disconnect is
"the messages whose version is above N"."""

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
from apps.core.text import Wording

from . import emoji, formatting, realtime
from .errors import MessageNotFound, NotAllowed, RateLimited, RoomNotFound
from .models import Membership, Message, Reaction, Room
from .selectors import room_is_managed_by, room_is_visible_to, with_timeline

__all__ = [
    "ChangeResult",
    "MessageNotFound",
    "NotAllowed",
    "RateLimited",
    "ReactResult",
    "RoomNotFound",
    "SendResult",
    "dm_get_or_create",
    "message_delete",
    "message_edit",
    "message_send",
    "reaction_add",
    "reaction_remove",
    "room_create",
]


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


def _rate_limit(key: str, rate: tuple[int, int], wording) -> None:
    """Count one action; past the rate, RateLimited with the action's own words."""
    count, window = rate
    try:
        ratelimit.hit(key=key, limit=count, window=window)
    except RateLimited as exc:
        exc.message = str(wording) % {"s": exc.retry_after}
        raise


def _clean_room_name(name: object) -> str:
    return text.clean_name(
        name, max_length=settings.PARLEY_ROOM_NAME_MAX_LENGTH, wording=_ROOM_NAME
    )


def room_create(*, name, creator) -> Room:
    """Create a public room owned by ``creator``. Names are unique ignoring case."""
    name = _clean_room_name(name)
    _rate_limit(
        f"room-create:{creator.pk}",
        settings.PARLEY_ROOM_CREATE_RATE,
        gettext_lazy("You are creating rooms too fast. Try again in %(s)d s."),
    )
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
    change: realtime.Change | None = None  # the events of a new message (None for a retry)


@dataclass(frozen=True)
class ChangeResult:
    message: Message  # its state after the change
    change: realtime.Change | None  # None when nothing changed (e.g. a reaction already there)


@dataclass(frozen=True)
class ReactResult(ChangeResult):
    created: bool = True  # False: the user had already reacted with this emoji


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


def _clean_message_id(value: object, *, field: str = "id") -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    raise ValidationError(_("%(field)s must be a message id.") % {"field": field}, code=field)


def _clean_emoji(value: object) -> str:
    if not emoji.is_allowed(value):
        raise ValidationError(_("That is not one of the reactions you can use."), code="emoji")
    return value


def _take_seqs(room: Room, count: int = 1, **fields) -> int:
    """Take the room's next ``count`` seqs; return the first. The UPDATE holds the room row's
    write lock until the transaction ends, so changes get consecutive seqs in commit order (no
    gaps, no reordering) and whatever this transaction reads afterwards is not changed under
    it by another change to this room. (``room.last_seq`` in memory is moved by the callers
    once their transaction is through: a refused change gives its seq back.)"""
    Room.objects.filter(pk=room.pk).update(last_seq=F("last_seq") + count, **fields)
    last = Room.objects.filter(pk=room.pk).values_list("last_seq", flat=True).get()
    return last - count + 1


def _seen(room: Room, change: realtime.Change | None) -> None:
    """The room object in hand learns the seq its committed change took (the consumer's
    ``resume`` check reads it)."""
    if change is not None:
        room.last_seq = max(room.last_seq, max(m.version for m in change.messages))


def _reply_target(room: Room, reply_to) -> Message | None:
    """The message replied to, read under the room's lock (a delete or edit that committed
    just before is seen): of this room, not deleted."""
    pk = _clean_message_id(reply_to, field="reply_to")
    target = (
        Message.objects.filter(pk=pk, room=room, deleted_at__isnull=True)
        .select_related("author__profile")
        .first()
    )
    if target is None:
        raise ValidationError(
            _("You can only reply to a message of this room that is not deleted."),
            code="reply_to",
        )
    return target


def message_send(*, room: Room, author, body, client_id=None, reply_to=None) -> SendResult:
    """The only way a message is born.

    Access check → validation → (idempotency) → rate limit → save with the room's next seq →
    one rendered article published to the room's group once the transaction commits.
    ``reply_to``: the id of a message of this room (quoted above the new one)."""
    _require_visible(room, author)
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
    if reply_to in (None, ""):
        reply_to = None
    else:
        _clean_message_id(reply_to, field="reply_to")  # the shape, before the rate limit
    _rate_limit(
        f"message-send:{author.pk}",
        settings.PARLEY_MESSAGE_RATE,
        gettext_lazy("You are sending too fast. Try again in %(s)d s."),
    )
    html = formatting.render_markdown(body)
    try:
        with transaction.atomic():
            now = timezone.now()
            seq = _take_seqs(room, last_message_at=now)
            target = None if reply_to is None else _reply_target(room, reply_to)
            message = Message.objects.create(
                room=room,
                author=author,
                seq=seq,
                version=seq,
                body=body,
                html=html,
                client_id=client_id,
                created_at=now,
                reply_to=target,
            )
            # Rendered from what is in hand: a new message has no reactions.
            message._prefetched_objects_cache = {"reactions": Reaction.objects.none()}
            change = realtime.emit_on_commit(room.pk, [message])
    except IntegrityError:
        # Same client_id raced in from another connection: the first one won; acknowledge it.
        earlier = client_id and _message_by_client_id(author=author, client_id=client_id)
        if earlier is None:
            raise
        return SendResult(earlier, created=False)
    room.last_seq, room.last_message_at = max(room.last_seq, seq), now
    return SendResult(message, created=True, change=change)


def _message_by_client_id(*, author, client_id) -> Message | None:
    return with_timeline(Message.objects.filter(author=author, client_id=client_id)).first()


def _require_visible(room: Room, user) -> None:
    """The access rule every action starts with: a room the user may not see does not exist."""
    if not room_is_visible_to(room=room, user=user):
        raise RoomNotFound


def _precheck(room: Room, message_id) -> tuple[int, int]:
    """The cheap refusals, before the room's lock is taken (a flood of refused frames must not
    serialise the room's writes): the id's shape and that the room has the message. Returns
    (its id, its author's id) for the caller's own check; all is checked again under the lock."""
    pk = _clean_message_id(message_id)
    author_id = Message.objects.filter(pk=pk, room=room).values_list("author_id", flat=True).first()
    if author_id is None:
        raise MessageNotFound
    return pk, author_id


def _locked_message(room: Room, pk: int) -> tuple[Message, int]:
    """Take one seq of the room (its write lock), then read the message as it is now."""
    first = _take_seqs(room)
    message = with_timeline(Message.objects.filter(pk=pk, room=room)).first()
    if message is None:
        raise MessageNotFound
    return message, first


def _with_replies(room: Room, message: Message, first_seq: int, *, quote_changed: bool):
    """The message (at ``first_seq``) and, when what their quote shows of it changed (its
    first line, or that it is deleted), the live messages replying to it, each at the next
    seq."""
    replies = []
    if quote_changed:
        replies = list(
            with_timeline(
                Message.objects.filter(room=room, reply_to=message, deleted_at__isnull=True)
            ).order_by("seq")
        )
    if replies:
        _take_seqs(room, len(replies))
    changed = [message]
    message.version = first_seq
    Message.objects.filter(pk=message.pk).update(version=first_seq)
    for offset, reply in enumerate(replies, start=1):
        reply.version = first_seq + offset
        reply.reply_to = message  # the instance just changed, for the quote
        Message.objects.filter(pk=reply.pk).update(version=reply.version)
        changed.append(reply)
    return changed


def message_edit(*, room: Room, user, message_id, body) -> ChangeResult:
    """Replace the text of one's own message. The old text is not kept anywhere: an edit that
    removes a pasted secret removes it (replies' quotes are re-rendered too). The same text
    again changes nothing."""
    _require_visible(room, user)
    body = _clean_body(body)
    pk, author_id = _precheck(room, message_id)
    if author_id != user.pk:
        raise NotAllowed(_("You can only edit your own messages."))
    _rate_limit(
        f"message-send:{user.pk}",
        settings.PARLEY_MESSAGE_RATE,
        gettext_lazy("You are editing too fast. Try again in %(s)d s."),
    )
    html = formatting.render_markdown(body)
    with transaction.atomic():
        message, first = _locked_message(room, pk)
        if message.author_id != user.pk:
            raise NotAllowed(_("You can only edit your own messages."))
        if message.deleted:
            raise ValidationError(_("That message was deleted."), code="deleted")
        if message.body == body:
            transaction.set_rollback(True)  # give the seq back: nothing changed
            return ChangeResult(message, None)
        quote_changed = formatting.first_line(message.body) != formatting.first_line(body)
        message.body, message.html, message.edited_at = body, html, timezone.now()
        Message.objects.filter(pk=message.pk).update(
            body=body, html=html, edited_at=message.edited_at
        )
        changed = _with_replies(room, message, first, quote_changed=quote_changed)
        change = realtime.emit_on_commit(room.pk, changed)
    _seen(room, change)
    return ChangeResult(message, change)


def message_delete(*, room: Room, user, message_id) -> ChangeResult:
    """Delete a message: its author may, and so may whoever manages the room. The row stays as
    a tombstone (its seq still means something); body, formatting, reactions and the reply link
    are erased. Deleting a deleted message changes nothing."""
    _require_visible(room, user)
    pk, author_id = _precheck(room, message_id)
    # Whether the user manages the room is asked only about someone else's message.
    manager = author_id != user.pk and room_is_managed_by(room=room, user=user)
    if author_id != user.pk and not manager:
        raise NotAllowed(_("You can only delete your own messages."))
    _rate_limit(
        f"message-delete:{user.pk}",
        settings.PARLEY_MESSAGE_RATE,
        gettext_lazy("You are deleting too fast. Try again in %(s)d s."),
    )
    with transaction.atomic():
        message, first = _locked_message(room, pk)
        if message.author_id != user.pk and not manager:
            raise NotAllowed(_("You can only delete your own messages."))
        if message.deleted:
            transaction.set_rollback(True)  # give the seq back: nothing changed
            return ChangeResult(message, None)
        Reaction.objects.filter(message=message).delete()
        message.body, message.html, message.reply_to = "", "", None
        message.deleted_at = timezone.now()
        Message.objects.filter(pk=message.pk).update(
            body="", html="", reply_to=None, deleted_at=message.deleted_at
        )
        message._prefetched_objects_cache = {"reactions": Reaction.objects.none()}
        changed = _with_replies(room, message, first, quote_changed=True)
        change = realtime.emit_on_commit(room.pk, changed)
    _seen(room, change)
    return ChangeResult(message, change)


def _reaction_checks(room: Room, user, message_id, emoji) -> tuple[str, int]:
    """What adding and taking back a reaction check before the lock: access, the emoji, the
    message, the rate."""
    _require_visible(room, user)
    emoji = _clean_emoji(emoji)
    pk, _author_id = _precheck(room, message_id)
    _rate_limit(
        f"reaction:{user.pk}",
        settings.PARLEY_REACTION_RATE,
        gettext_lazy("You are reacting too fast. Try again in %(s)d s."),
    )
    return emoji, pk


def _reaction_target(room: Room, pk: int) -> tuple[Message, int]:
    message, first = _locked_message(room, pk)
    if message.deleted:
        raise ValidationError(_("That message was deleted."), code="deleted")
    return message, first


def reaction_add(*, room: Room, user, message_id, emoji) -> ReactResult:
    """React to a message with one of the shipped emoji (``emoji.allowed``). Reacting again
    with the same emoji changes nothing (``created`` is False). A message takes at most
    ``PARLEY_REACTIONS_PER_MESSAGE`` different emoji."""
    emoji, pk = _reaction_checks(room, user, message_id, emoji)
    with transaction.atomic():
        message, first = _reaction_target(room, pk)
        reactions = list(message.reactions.all())
        if any(r.user_id == user.pk and r.emoji == emoji for r in reactions):
            transaction.set_rollback(True)
            return ReactResult(message, None, created=False)
        kinds = {r.emoji for r in reactions}
        if emoji not in kinds and len(kinds) >= settings.PARLEY_REACTIONS_PER_MESSAGE:
            raise ValidationError(
                _("A message can have at most %(max)d different reactions.")
                % {"max": settings.PARLEY_REACTIONS_PER_MESSAGE},
                code="emoji",
            )
        Reaction.objects.create(message=message, user=user, emoji=emoji)
        message = _bump(room, message, first)
        change = realtime.emit_on_commit(room.pk, [message])
    _seen(room, change)
    return ReactResult(message, change, created=True)


def reaction_remove(*, room: Room, user, message_id, emoji) -> ChangeResult:
    """Take back one's reaction. ``change`` is None when there was none to take back."""
    emoji, pk = _reaction_checks(room, user, message_id, emoji)
    with transaction.atomic():
        message, first = _reaction_target(room, pk)
        removed, _by_model = Reaction.objects.filter(
            message=message, user=user, emoji=emoji
        ).delete()
        if not removed:
            transaction.set_rollback(True)
            return ChangeResult(message, None)
        message = _bump(room, message, first)
        change = realtime.emit_on_commit(room.pk, [message])
    _seen(room, change)
    return ChangeResult(message, change)


def _bump(room: Room, message: Message, seq: int) -> Message:
    """Give the message its new version and re-read its reactions (with who reacted)."""
    Message.objects.filter(pk=message.pk).update(version=seq)
    return with_timeline(Message.objects.filter(pk=message.pk)).get()
