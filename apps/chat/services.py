"""Writes. Each action is one function: access check, validation, save, then events on commit.
The websocket consumer, the HTML views and the API all call these — there is no other path.

Every change to a room's timeline — a message sent, edited or deleted, a reaction added or
removed — takes the room's next seq (``_take_seqs``, under the room row's write lock) and
becomes the changed message's ``version``. ``realtime.emit_on_commit`` then publishes each
change's rendered article once the transaction commits, so catch-up after any disconnect is
"the messages whose version is above N"."""

import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.db.models import BigIntegerField, F, Q, QuerySet, Subquery, Value
from django.db.models.functions import Least, Lower
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.core import ratelimit, text
from apps.core.text import Wording

from . import emoji, filestore, formatting, realtime, receipts, search, selectors
from .errors import (
    MemberNotFound,
    MessageNotFound,
    NotAllowed,
    RateLimited,
    RoomNotFound,
    parse_seq,
)
from .models import Attachment, Membership, Mention, Message, Reaction, Room
from .selectors import room_is_managed_by, room_is_visible_to, with_timeline

__all__ = [
    "ChangeResult",
    "MemberNotFound",
    "MessageNotFound",
    "NotAllowed",
    "RateLimited",
    "ReactResult",
    "RoomNotFound",
    "SendResult",
    "dm_get_or_create",
    "member_add",
    "member_remove",
    "membership_set_notify",
    "message_delete",
    "message_edit",
    "message_send",
    "reaction_add",
    "reaction_remove",
    "room_create",
    "room_delete",
    "room_join",
    "room_leave",
    "room_mark_read",
    "room_update",
]

MAX_MENTIONS = 50  # people one message may mention by name (@room aside)
MAX_INITIAL_MEMBERS = 200  # usernames one room_create may name


_ROOM_NAME = Wording(
    not_text=gettext_lazy("Enter a room name."),
    empty=gettext_lazy("Enter a room name."),
    too_long=gettext_lazy("A room name can have at most %(max)d characters."),
    forbidden=gettext_lazy("A room name cannot contain control or invisible characters."),
)
_TOPIC = Wording(
    not_text=gettext_lazy("The topic must be text."),
    empty=gettext_lazy("Enter a topic."),
    too_long=gettext_lazy("A topic can have at most %(max)d characters."),
    forbidden=gettext_lazy("A topic cannot contain control or invisible characters."),
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


def _clean_topic(topic: object) -> str:
    if topic is None:
        return ""
    try:
        return text.clean_name(
            topic,
            max_length=Room._meta.get_field("topic").max_length,
            wording=_TOPIC,
            allow_empty=True,
        )
    except ValidationError as exc:  # the field's own code: told apart from the name's
        raise ValidationError(exc.messages[0], code="topic") from None


def _clean_usernames(members: object, *, field: str = "members") -> list[str]:
    if members is None:
        return []
    if isinstance(members, str) or not isinstance(members, (list, tuple, set, frozenset)):
        raise ValidationError(_("Members must be a list of usernames."), code=field)
    if len(members) > MAX_INITIAL_MEMBERS:
        raise ValidationError(
            _("A new room can have at most %(max)d members.") % {"max": MAX_INITIAL_MEMBERS},
            code=field,
        )
    names: dict[str, str] = {}
    for member in members:
        if not isinstance(member, str) or not member.strip() or len(member) > 150:
            raise ValidationError(_("Members must be a list of usernames."), code=field)
        _refuse_control_characters(member, field=field)
        names.setdefault(member.strip().lower(), member.strip())
    return list(names.values())


def _refuse_control_characters(username: str, *, field: str) -> None:
    """No username has a control character (NUL would even be a database error on
    PostgreSQL): refused before any query, with the field's code."""
    if text.has_control_character(username):
        raise ValidationError(_("A username cannot contain control characters."), code=field)


def _users_named(users: QuerySet, names) -> dict[str, object]:
    """{name lowered: user} of ``users`` whose username is one of ``names`` ignoring case, in
    one query, on SQLite as on PostgreSQL. SQLite's lower() (and LIKE, hence iexact) folds
    ASCII letters only, so "Émile" never equalled "émile" there: a name with other letters is
    also matched by a case-insensitive regex (SQLite's REGEXP is Python's re, which folds
    Unicode; PostgreSQL's ~* folds as its lower() does). What the database found is then
    compared in Python, by ``str.lower()``. Of two accounts differing only in case, the one
    spelled exactly as asked wins, else the older."""
    wanted = {name.lower(): name for name in names}
    if not wanted:
        return {}
    match = Q(lname__in=list(wanted))
    unicode_names = [name for name in wanted if not name.isascii()]
    if unicode_names:
        pattern = "^(?:{})$".format("|".join(re.escape(name) for name in unicode_names))
        match |= Q(username__iregex=pattern)
    candidates = users.annotate(lname=Lower("username")).filter(match).order_by("pk")
    exact = set(names)
    found: dict[str, object] = {}
    for user in sorted(candidates, key=lambda user: user.username not in exact):
        key = user.username.lower()
        if key in wanted:
            found.setdefault(key, user)
    return found


def _active_users_named(usernames: list[str]) -> dict[str, object]:
    """{lower username: user} of the active users with these names (ignoring case)."""
    return _users_named(get_user_model().objects.filter(is_active=True), usernames)


def _admin_rate(user) -> None:
    _rate_limit(
        f"room-admin:{user.pk}",
        settings.PARLEY_ROOM_ADMIN_RATE,
        gettext_lazy("You are changing rooms too fast. Try again in %(s)d s."),
    )


def room_create(*, name, creator, private=False, members=(), topic="") -> Room:
    """Create a room owned by ``creator``: public (names unique ignoring case), or a private
    group with the chosen ``members`` (usernames of active users; the creator is always in
    it). Emits user.rooms for every member, and directory.changed for a public room."""
    name = _clean_room_name(name)
    topic = _clean_topic(topic)
    if not isinstance(private, bool):
        raise ValidationError(_("private must be true or false."), code="private")
    usernames = _clean_usernames(members)
    if usernames and not private:
        raise ValidationError(
            _("Members are chosen for a private group; anyone can join a public room."),
            code="members",
        )
    _rate_limit(
        f"room-create:{creator.pk}",
        settings.PARLEY_ROOM_CREATE_RATE,
        gettext_lazy("You are creating rooms too fast. Try again in %(s)d s."),
    )
    taken = ValidationError(_("A room with this name already exists."), code="unique")
    if not private and Room.objects.public().filter(name__iexact=name).exists():
        raise taken
    others = []
    if usernames:
        found = _active_users_named(usernames)
        missing = [username for username in usernames if username.lower() not in found]
        if missing:
            raise ValidationError(
                _("No active user is called: %(names)s.") % {"names": ", ".join(missing)},
                code="members",
            )
        others = [user for user in found.values() if user.pk != creator.pk]
    try:
        with transaction.atomic():
            room = Room.objects.create(
                name=name, topic=topic, is_private=private, created_by=creator
            )
            Membership.objects.bulk_create(
                [Membership(room=room, user=creator, role=Membership.Role.OWNER)]
                + [Membership(room=room, user=user, role=Membership.Role.MEMBER) for user in others]
            )
            realtime.emit_user_rooms([creator.pk, *(user.pk for user in others)])
            if not private:
                realtime.emit_directory_changed()
    except IntegrityError:  # lost a race with another creator: the constraint decides
        raise taken from None
    return room


def _manager_access(room: Room, user) -> selectors.Access:
    """Visible (else RoomNotFound) and managed by ``user`` (else NotAllowed): an owner of a
    room that is not a direct conversation."""
    access = selectors.room_access(room=room, user=user)
    if not access.visible:
        raise RoomNotFound
    if room.dm_key is not None:
        raise NotAllowed(_("A direct conversation has no owners: nobody can manage it."))
    if access.role != Membership.Role.OWNER:
        raise NotAllowed(_("Only the room's owners may do that."))
    return access


def room_update(*, room: Room, user, name=None, topic=None, room_mentions=None) -> Room:
    """Rename the room, set its topic or its @room policy (owners). Emits room.updated when
    the name or topic changed (and directory.changed when a public room's name did)."""
    _manager_access(room, user)
    changes: dict = {}
    if name is not None:
        name = _clean_room_name(name)
        if name != room.name:
            changes["name"] = name
    if topic is not None:
        topic = _clean_topic(topic)
        if topic != room.topic:
            changes["topic"] = topic
    if room_mentions is not None:
        if room_mentions not in Room.RoomMentions.values:
            raise ValidationError(
                _("Who may mention @room: one of %(choices)s.")
                % {"choices": ", ".join(Room.RoomMentions.values)},
                code="room_mentions",
            )
        if room_mentions != room.room_mentions:
            changes["room_mentions"] = room_mentions
    _admin_rate(user)
    if not changes:
        return room
    taken = ValidationError(_("A room with this name already exists."), code="unique")
    if "name" in changes and not room.is_private:
        others = Room.objects.public().filter(name__iexact=name).exclude(pk=room.pk)
        if others.exists():
            raise taken
    try:
        with transaction.atomic():
            if not Room.objects.filter(pk=room.pk).update(**changes):
                raise RoomNotFound  # deleted since the access check
            for key, value in changes.items():
                setattr(room, key, value)
            if "name" in changes or "topic" in changes:
                realtime.emit_room_updated(room)
            if "name" in changes and not room.is_private:
                realtime.emit_directory_changed()
    except IntegrityError:
        raise taken from None
    return room


def room_delete(*, room: Room, user) -> None:
    """Delete the room and everything in it (owners). Emits room.access for everyone (open
    sockets of it close) and user.rooms for every former member."""
    _manager_access(room, user)
    with transaction.atomic():
        member_ids = list(Membership.objects.filter(room=room).values_list("user_id", flat=True))
        _delete_room_rows(room)
        realtime.emit_room_access(room.pk, None)
        realtime.emit_user_rooms(member_ids)
        if not room.is_private:
            realtime.emit_directory_changed()


def _delete_room_rows(room: Room) -> None:
    """Delete the room and everything in it with a constant number of statements, however
    many messages it has. ``Room.delete()`` alone would make Django's collector read every
    message (they have dependents: reactions, mentions, replies) and delete them a batch at a
    time. So the dependents go first, each in one DELETE (the collector's own fast path: no
    signals, nothing depends on them), then the messages in one raw DELETE — nothing depends
    on them any more: a reply is always of its own room (``_reply_target``), and any
    reference from elsewhere is cleared first — then memberships and the room."""
    using = router.db_for_write(Message)
    Reaction.objects.filter(message__room=room).delete()
    Mention.objects.filter(room=room).delete()
    # The stored files' names (one query), deleted from storage once this commits. The rows
    # go with the room below, in the collector's one fast DELETE by room (foreign keys are
    # checked at commit on both databases, so the messages may go first).
    filestore.delete_on_commit(filestore.stored_names(Attachment.objects.filter(room=room)))
    Message.objects.filter(reply_to__room=room).exclude(room=room).update(reply_to=None)
    Message.objects.filter(room=room)._raw_delete(using)
    Membership.objects.filter(room=room).delete()
    Room.objects.filter(pk=room.pk).delete()


def _new_member(room: Room, user, *, last_read_seq: int) -> Membership:
    """A member joining (themselves, added by an owner, or by posting): nothing before
    ``last_read_seq`` is unread for them; notified of mentions."""
    return Membership(
        room=room,
        user=user,
        role=Membership.Role.MEMBER,
        notify=Membership.Notify.MENTIONS,
        last_read_seq=last_read_seq,
    )


def room_join(*, room: Room, user) -> tuple[Membership, bool]:
    """Join a public room (the messages already there are not unread). Already a member (of
    any room): nothing changes, ``created`` is False. Emits user.rooms for the user."""
    access = selectors.room_access(room=room, user=user)
    if not access.visible:
        raise RoomNotFound
    if access.role is not None:
        return Membership.objects.get(room=room, user=user), False
    try:
        with transaction.atomic():
            # Under the room's lock: no change of the room commits between reading its last
            # seq and the membership (nothing already there is unread), and a room deleted
            # meanwhile is RoomNotFound, not a membership of nothing.
            membership = _new_member(room, user, last_read_seq=_lock_room(room))
            membership.save(force_insert=True)
            realtime.emit_user_rooms([user.pk])
    except IntegrityError:  # joined meanwhile (another tab)
        return _existing_membership(room, user), False
    return membership, True


def _existing_membership(room: Room, user) -> Membership:
    """The membership a lost insert race left (RoomNotFound when the race was the room's
    deletion)."""
    membership = Membership.objects.filter(room=room, user=user).first()
    if membership is None:
        raise RoomNotFound
    return membership


def room_leave(*, room: Room, user) -> bool:
    """Leave a room; False if not a member. A direct conversation cannot be left. The last
    owner leaving makes the oldest remaining member owner; the last member leaving a private
    group deletes it. Emits user.rooms (the user, a promoted member) and, for a private room,
    room.access for the user (their open sockets of it close)."""
    access = selectors.room_access(room=room, user=user)
    if not access.visible:
        raise RoomNotFound
    if room.dm_key is not None:
        raise NotAllowed(_("You cannot leave a direct conversation."))
    if access.role is None:
        return False
    with transaction.atomic():
        # The room row's lock: two last owners leaving at once cannot both see the other stay.
        _lock_room(room)
        removed, _by_model = Membership.objects.filter(room=room, user=user).delete()
        if not removed:
            return False
        remaining = Membership.objects.filter(room=room)
        changed = [user.pk]
        if room.is_private and not remaining.exists():
            _delete_room_rows(room)
            realtime.emit_room_access(room.pk, None)
        else:
            if not remaining.filter(role=Membership.Role.OWNER).exists():
                oldest = remaining.order_by("joined_at", "pk").first()
                if oldest is not None:
                    Membership.objects.filter(pk=oldest.pk).update(role=Membership.Role.OWNER)
                    changed.append(oldest.user_id)
            if room.is_private:
                realtime.emit_room_access(room.pk, [user.pk])
        realtime.emit_user_rooms(changed)
    return True


def _private_group_manager(room: Room, user) -> None:
    _manager_access(room, user)
    if not room.is_private:
        raise NotAllowed(_("Anyone can join a public room: it has no member list to manage."))


def member_add(*, room: Room, user, username) -> tuple[Membership, bool]:
    """Add an active user to a private group (owners): (their membership, ``created``).
    Already a member: their membership, unchanged, and False. Emits user.rooms for the added
    user."""
    _private_group_manager(room, user)
    if not isinstance(username, str) or not username.strip() or len(username) > 150:
        raise ValidationError(_("Enter a username."), code="username")
    _refuse_control_characters(username, field="username")
    username = username.strip()
    _admin_rate(user)
    target = _active_users_named([username]).get(username.lower())
    if target is None:
        raise ValidationError(
            _("No active user is called %(name)s.") % {"name": username}, code="username"
        )
    existing = Membership.objects.filter(room=room, user=target).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            last_seq = _lock_room(room)  # see room_join
            _still_owner(room, user)
            membership = _new_member(room, target, last_read_seq=last_seq)
            membership.save(force_insert=True)
            realtime.emit_user_rooms([target.pk])
    except IntegrityError:  # added meanwhile by another owner
        return _existing_membership(room, target), False
    return membership, True


def _clean_user_id(value: object, *, field: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    raise ValidationError(_("%(field)s must be a user id.") % {"field": field}, code=field)


def _still_owner(room: Room, user) -> None:
    """Under the room's lock (``_lock_room`` first): is ``user`` still an owner? The access
    check before the lock may be stale: another owner may have removed them meanwhile (two
    owners removing each other at once must not both succeed and leave the group with no
    owner). A statement of its own, after the lock: on PostgreSQL a subquery of the locking
    statement would read the snapshot taken before it waited."""
    role = Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()
    if role is None:
        raise RoomNotFound  # removed meanwhile: the private group is gone for them
    if role != Membership.Role.OWNER:
        raise NotAllowed(_("Only the room's owners may do that."))


def member_remove(*, room: Room, user, member_id) -> None:
    """Remove someone from a private group (owners). Their open sockets of it close
    (room.access) and it leaves their sidebar (user.rooms). The remover's ownership and the
    target's membership are decided under the room's lock (the one room_leave takes)."""
    _private_group_manager(room, user)
    member_id = _clean_user_id(member_id, field="member_id")
    if member_id == user.pk:
        raise ValidationError(_("To leave the room yourself, use leave."), code="member_id")
    with transaction.atomic():
        _lock_room(room)
        _still_owner(room, user)
        removed, _by_model = Membership.objects.filter(room=room, user_id=member_id).delete()
        if not removed:
            raise MemberNotFound
        realtime.emit_room_access(room.pk, [member_id])
        realtime.emit_user_rooms([member_id])


def _require_member(room: Room, user) -> None:
    """A member (else NotAllowed), of a room the user may see (else RoomNotFound). Asked only
    when the membership was not found (the caller's own query)."""
    if not room_is_visible_to(room=room, user=user):
        raise RoomNotFound
    raise NotAllowed(_("Join the room first."))


def room_mark_read(*, room: Room, user, seq, force=False) -> selectors.UnreadState:
    """Move the user's read pointer to ``seq`` (clamped to the room's last seq): forward
    only, or also backward with ``force`` ("mark as unread from here"). Emits user.read when
    it moved (its on-commit callback reads the new state once more, for the other sockets).
    One UPDATE and one read of the new state here, whatever happens. Loosely rate limited
    per user (``PARLEY_READ_RATE``, default 120 per 10 s): RateLimited."""
    seq = parse_seq(seq, name="seq")
    if not isinstance(force, bool):
        raise ValidationError(_("force must be true or false."), code="force")
    if user is None or not user.is_authenticated:
        raise RoomNotFound
    _rate_limit(
        f"room-read:{user.pk}",
        settings.PARLEY_READ_RATE,
        gettext_lazy("You are marking rooms read too fast. Try again in %(s)d s."),
    )
    last_seq = Subquery(Room.objects.filter(pk=room.pk).values("last_seq")[:1])
    target = Least(Value(seq), last_seq, output_field=BigIntegerField())
    memberships = Membership.objects.filter(room=room, user=user)
    moving = (
        memberships.exclude(last_read_seq=target)
        if force
        else memberships.filter(last_read_seq__lt=target)
    )
    if moving.update(last_read_seq=target):
        realtime.emit_user_read(user.pk, room.pk)
        realtime.emit_receipts(room.pk, user.pk)  # the room's viewers (small rooms only)
    state = selectors.unread_states(user_id=user.pk, room_ids=[room.pk]).get(room.pk)
    if state is None:
        _require_member(room, user)
    return state


def rooms_read_live(reads: dict[int, dict[int, int]]) -> None:
    """Pointers moved by live reading ({room id: {user id: message seq}}): the messages that
    reached a socket whose page reads its room live (focused, at the bottom: the ``active``
    frame) are read. Batched by the hub (fanout.Hub.read_later, at most one call a second
    per process): one UPDATE per room and seq, forward only, and one ``room.read`` event per
    room for the user's other sockets. Not rate limited: the server makes these, not a
    client. A user who is no longer a member has no pointer to move (nothing happens)."""
    with transaction.atomic():
        for room_id, users in reads.items():
            by_seq: dict[int, list[int]] = {}
            for user_id, seq in users.items():
                by_seq.setdefault(seq, []).append(user_id)
            for seq, user_ids in by_seq.items():
                Membership.objects.filter(
                    room_id=room_id, user_id__in=user_ids, last_read_seq__lt=seq
                ).update(last_read_seq=seq)
        # The read receipts of the batch's small rooms, after the moves: one query.
        shown = receipts.receipts_of_rooms(reads)
        for room_id, users in reads.items():
            pairs = shown.get(room_id)
            if pairs is not None and not any(pair[0] in users for pair in pairs):
                pairs = None  # only readers who send no receipts moved: nothing changed
            realtime.emit_room_read(room_id, users, receipts=pairs)


def membership_set_notify(*, room: Room, user, notify) -> Membership:
    """What notifies the user in this room: "all", "mentions" or "none" (muted). Emits
    user.rooms for the user when it changed."""
    membership = selectors.room_membership(room=room, user=user)
    if membership is None:
        _require_member(room, user)
    if notify not in Membership.Notify.values:
        raise ValidationError(
            _("notify must be one of %(choices)s.")
            % {"choices": ", ".join(Membership.Notify.values)},
            code="notify",
        )
    if membership.notify != notify:
        Membership.objects.filter(pk=membership.pk).update(notify=notify)
        membership.notify = notify
        realtime.emit_user_rooms([user.pk])
    return membership


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
                    Membership(room=room, user=member, role=Membership.Role.OWNER, notify="all")
                    for member in (user, other)
                ]
            )
            realtime.emit_user_rooms([user.pk, other.pk])
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


def _clean_body(body: object, *, allow_empty: bool = False) -> str:
    if body is None and allow_empty:
        return ""
    return text.clean_body(
        body,
        max_length=settings.PARLEY_MESSAGE_MAX_LENGTH,
        wording=_BODY,
        allow_empty=allow_empty,
    )


_NOT_YOUR_UPLOAD = gettext_lazy("That file is not one you uploaded here, or it was already sent.")


def _clean_attachment_ids(value: object) -> list[int]:
    """The ids of the files a message carries: a list of distinct ids (a lone id, or its
    digits — what one hidden form field sends — counts as a list of one), at most
    ``PARLEY_ATTACHMENTS_PER_MESSAGE``. None or [] means none."""
    if value is None or value == "":
        return []
    if not isinstance(value, (list, tuple)):
        value = [value]
    limit = settings.PARLEY_ATTACHMENTS_PER_MESSAGE
    if len(value) > limit:
        raise ValidationError(
            _("A message can carry at most %(max)d files.") % {"max": limit},
            code="attachments",
        )
    ids: list[int] = []
    for item in value:
        try:
            pk = _clean_message_id(item, field="attachments")
        except ValidationError:
            raise ValidationError(
                _("attachments must be a list of file ids."), code="attachments"
            ) from None
        if pk in ids:
            raise ValidationError(_("The same file is attached twice."), code="attachments")
        ids.append(pk)
    return ids


def _unsent_uploads(room: Room, author, ids: list[int], *, locked: bool = True):
    """The author's unsent uploads ``ids`` in this room in the order given; ``locked`` (in the
    send's transaction): SELECT … FOR UPDATE until the send commits, so a concurrent send of
    the same upload waits, then no longer finds it unsent. Anything else: ValidationError."""
    rows = Attachment.objects.filter(pk__in=ids, room=room, uploader=author, message__isnull=True)
    if locked:
        rows = rows.select_for_update()
    found = {attachment.pk: attachment for attachment in rows}
    if len(found) != len(ids):
        raise ValidationError(str(_NOT_YOUR_UPLOAD), code="attachments")
    return [found[pk] for pk in ids]


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
    if not Room.objects.filter(pk=room.pk).update(last_seq=F("last_seq") + count, **fields):
        raise RoomNotFound  # deleted since the access check (its messages with it)
    last = Room.objects.filter(pk=room.pk).values_list("last_seq", flat=True).get()
    return last - count + 1


def _lock_room(room: Room) -> int:
    """Take the room row's write lock for the rest of the transaction (what ``_take_seqs``
    and ``room_leave`` serialise on) and return its last seq. RoomNotFound when the room was
    deleted since the caller's access check: nothing may be added to a room that is gone.
    Whatever the caller reads after this (its own statements) sees every change committed
    before the lock was granted."""
    last_seq = (
        Room.objects.select_for_update()
        .filter(pk=room.pk)
        .values_list("last_seq", flat=True)
        .first()
    )
    if last_seq is None:
        raise RoomNotFound
    return last_seq


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


def _mention_resolver(room: Room):
    """Who the names a body mentions are in this room: active users (of a private room, its
    members), ignoring case; one query, made only when the body names someone."""

    def resolve(names: list[str]) -> dict[str, tuple[int, str]]:
        users = get_user_model().objects.filter(is_active=True).only("pk", "username")
        if room.is_private:
            users = users.filter(memberships__room=room)
        return {name: (user.pk, user.username) for name, user in _users_named(users, names).items()}

    return resolve


def _render(room: Room, body: str) -> formatting.Rendered:
    """The body's HTML and mentions; at most MAX_MENTIONS people."""
    rendered = formatting.render_message(body, resolve=_mention_resolver(room))
    if len(rendered.mention_ids) > MAX_MENTIONS:
        raise ValidationError(
            _("A message can mention at most %(max)d people.") % {"max": MAX_MENTIONS},
            code="mentions",
        )
    return rendered


def _check_room_mention(access: selectors.Access) -> None:
    """@room comes only from an owner where the room says so."""
    if access.room_mentions == Room.RoomMentions.OWNERS and access.role != Membership.Role.OWNER:
        raise ValidationError(_("Only the room's owners may mention @room here."), code="mentions")


def message_send(
    *, room: Room, author, body, client_id=None, reply_to=None, attachments=None
) -> SendResult:
    """The only way a message is born.

    Access check → validation → (idempotency) → rate limit → save with the room's next seq →
    one rendered article published to the room's group once the transaction commits.
    ``reply_to``: the id of a message of this room (quoted above the new one). Posting in a
    public room one has not joined joins it (the access query already says whether one is a
    member); a member's post moves their own read pointer to it (one UPDATE). Mentions are
    resolved with one query, only when the body names someone. ``attachments``: the ids of
    the author's unsent uploads in this room (attachments.attachment_upload), carried in that
    order; with files the body may be empty."""
    access = _posting_access(room, author)
    attachment_ids = _clean_attachment_ids(attachments)
    body = _clean_body(body, allow_empty=bool(attachment_ids))
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
    rendered = _render(room, body)
    if rendered.mentions_room:
        _check_room_mention(access)
    if attachment_ids:
        # The cheap refusal before the room's lock (checked again, locked, under it).
        _unsent_uploads(room, author, attachment_ids, locked=False)
    try:
        with transaction.atomic():
            now = timezone.now()
            seq = _take_seqs(room, last_message_at=now)
            target = None if reply_to is None else _reply_target(room, reply_to)
            files = _unsent_uploads(room, author, attachment_ids) if attachment_ids else []
            message = Message.objects.create(
                room=room,
                author=author,
                seq=seq,
                version=seq,
                body=body,
                html=rendered.html,
                client_id=client_id,
                created_at=now,
                reply_to=target,
                mentions_room=rendered.mentions_room,
                search_text=search.search_text_for(body, [file.name for file in files]),
                has_attachments=bool(files),
            )
            if files:
                for position, file in enumerate(files):
                    file.message, file.position = message, position
                Attachment.objects.bulk_update(files, ["message", "position"])
            if rendered.mention_ids:
                Mention.objects.bulk_create(
                    [
                        Mention(message=message, user_id=pk, room_id=room.pk, seq=seq)
                        for pk in rendered.mention_ids
                    ]
                )
            message._mention_ids = rendered.mention_ids
            if access.is_member:
                # One's own new message moves one's read pointer to it (what came before it
                # was in view while typing, as in Slack and Zulip; and a bot's own messages are
                # never above its pointer for the capped counts to read). No user.read event:
                # the sockets apply "my new message moves my pointer" themselves.
                Membership.objects.filter(room=room, user=author, last_read_seq__lt=seq).update(
                    last_read_seq=seq
                )
            else:  # a public room: posting joins it (the new membership's pointer is seq)
                Membership.objects.bulk_create(
                    [_new_member(room, author, last_read_seq=seq)],
                    ignore_conflicts=True,  # joined meanwhile (another tab): nothing to do
                )
                realtime.emit_user_rooms([author.pk])
            # Rendered from what is in hand: a new message has no reactions, and the files
            # just claimed, in their order.
            message._prefetched_objects_cache = {
                "reactions": Reaction.objects.none(),
                "attachments": files,
            }
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


def _posting_access(room: Room, user) -> selectors.Access:
    """Sending, editing, reacting: the room visible (else RoomNotFound) and postable
    (``Room.objects.postable_by``, else NotAllowed), from the one access query."""
    access = selectors.room_access(room=room, user=user, posting=True)
    if not access.visible:
        raise RoomNotFound
    if not access.postable:
        raise NotAllowed(_("You cannot post in this room."))
    return access


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
    access = _posting_access(room, user)
    body = _clean_body(body)
    pk, author_id = _precheck(room, message_id)
    if author_id != user.pk:
        raise NotAllowed(_("You can only edit your own messages."))
    _rate_limit(
        f"message-send:{user.pk}",
        settings.PARLEY_MESSAGE_RATE,
        gettext_lazy("You are editing too fast. Try again in %(s)d s."),
    )
    rendered = _render(room, body)
    with transaction.atomic():
        message, first = _locked_message(room, pk)
        if message.author_id != user.pk:
            raise NotAllowed(_("You can only edit your own messages."))
        if message.deleted:
            raise ValidationError(_("That message was deleted."), code="deleted")
        if message.body == body:
            transaction.set_rollback(True)  # give the seq back: nothing changed
            return ChangeResult(message, None)
        if rendered.mentions_room and not message.mentions_room:
            _check_room_mention(access)  # adding @room (keeping one it had is no new call)
        quote_changed = formatting.first_line(message.body) != formatting.first_line(body)
        message.body, message.html, message.edited_at = body, rendered.html, timezone.now()
        Message.objects.filter(pk=message.pk).update(
            body=body,
            html=rendered.html,
            edited_at=message.edited_at,
            mentions_room=rendered.mentions_room,
            search_text=search.search_text_for(body, [file.name for file in message.files]),
        )
        _update_mentions(message, rendered)
        changed = _with_replies(room, message, first, quote_changed=quote_changed)
        change = realtime.emit_on_commit(room.pk, changed)
    _seen(room, change)
    return ChangeResult(message, change)


def _update_mentions(message: Message, rendered: formatting.Rendered) -> None:
    """Make the message's Mention rows what the new text says; when that changed, what it
    had goes on ``message.mentions_before`` (for the edit's event, realtime.change_meta)."""
    before, had_room = message.mention_ids, message.mentions_room
    after = rendered.mention_ids
    if before != after:
        gone = set(before) - set(after)
        if gone:
            Mention.objects.filter(message=message, user_id__in=gone).delete()
        new = [
            Mention(message=message, user_id=pk, room_id=message.room_id, seq=message.seq)
            for pk in after
            if pk not in set(before)
        ]
        if new:
            Mention.objects.bulk_create(new, ignore_conflicts=True)
    if before != after or had_room != rendered.mentions_room:
        message.mentions_before = {"mentions": before, "everyone": had_room}
    message._mention_ids = after
    message.mentions_room = rendered.mentions_room


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
        if message.has_attachments:  # their stored files go once this commits
            files = Attachment.objects.filter(message=message)
            filestore.delete_on_commit(filestore.stored_names(files))
            files.delete()
        message.body, message.html, message.reply_to = "", "", None
        message.deleted_at, message.has_attachments = timezone.now(), False
        Message.objects.filter(pk=message.pk).update(
            body="",
            html="",
            reply_to=None,
            deleted_at=message.deleted_at,
            search_text="",
            has_attachments=False,
        )
        message._prefetched_objects_cache = {
            "reactions": Reaction.objects.none(),
            "attachments": [],
        }
        changed = _with_replies(room, message, first, quote_changed=True)
        change = realtime.emit_on_commit(room.pk, changed)
    _seen(room, change)
    return ChangeResult(message, change)


def _reaction_checks(room: Room, user, message_id, emoji) -> tuple[str, int]:
    """What adding and taking back a reaction check before the lock: access, the emoji, the
    message, the rate."""
    _posting_access(room, user)
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
