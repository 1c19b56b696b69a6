"""Reads. Every room lookup starts from ``Room.objects.visible_to(user)`` — the one access rule."""

from django.conf import settings
from django.db.models import Prefetch, QuerySet

from apps.profiles.models import Profile

from .models import Membership, Message, Reaction, Room


def room_list_for_user(*, user) -> QuerySet[Room]:
    return Room.objects.visible_to(user).order_by("-last_message_at", "-created_at")


def room_get_for_user(*, user, pk) -> Room:
    """The room if ``user`` may see it; ``Room.DoesNotExist`` otherwise (a private room that is
    not yours is indistinguishable from one that does not exist)."""
    return Room.objects.visible_to(user).get(pk=pk)


def room_is_visible_to(*, room: Room, user) -> bool:
    """The same rule for a room already in hand (one indexed query)."""
    return Room.objects.visible_to(user).filter(pk=room.pk).exists()


def room_is_managed_by(*, room: Room, user) -> bool:
    """May ``user`` manage the room (delete anyone's message)? ``Room.objects.managed_by``."""
    return Room.objects.managed_by(user).filter(pk=room.pk).exists()


def public_room_list(*, user) -> QuerySet[Room]:
    return room_list_for_user(user=user).filter(is_private=False)


def with_private_members(rooms: QuerySet[Room]) -> QuerySet[Room]:
    """Prefetch the participants (with profiles) of the private rooms among ``rooms`` into
    ``room.member_list``, so ``room_title_for`` costs no query per room. Public rooms' members,
    possibly many, are not loaded."""
    members = Membership.objects.filter(room__is_private=True).select_related("user__profile")
    return rooms.prefetch_related(Prefetch("memberships", queryset=members, to_attr="member_list"))


def private_room_list(*, user) -> QuerySet[Room]:
    """The user's private conversations, titles prefetched."""
    return with_private_members(room_list_for_user(user=user).filter(is_private=True))


def room_title_for(*, room: Room, user) -> str:
    """A public room's name; for a private room, the other participant's display name."""
    if not room.is_private:
        return room.name
    members = getattr(room, "member_list", None)
    if members is None:
        members = list(room.memberships.select_related("user__profile"))
    others = [m.user for m in members if m.user_id != user.pk] or [m.user for m in members]
    return ", ".join(_profile_name(u) for u in others) or room.name


def _profile_name(user) -> str:
    try:
        return user.profile.name
    except Profile.DoesNotExist:
        return user.get_username()


def with_timeline(messages: QuerySet[Message]) -> QuerySet[Message]:
    """Everything a message's article shows, in a constant number of queries whatever the
    number of messages: the author's profile, the replied-to message and its author (one
    join), and the reactions with who reacted (one prefetch query)."""
    reactions = Reaction.objects.select_related("user__profile").order_by("created_at", "pk")
    return messages.select_related("author__profile", "reply_to__author__profile").prefetch_related(
        Prefetch("reactions", queryset=reactions)
    )


def _message_qs(room: Room) -> QuerySet[Message]:
    return with_timeline(Message.objects.filter(room=room))


def message_list_latest(*, room: Room, limit: int | None = None) -> list[Message]:
    """The newest ``limit`` messages, oldest first. One query (keyset on seq, no OFFSET)."""
    limit = limit or settings.PARLEY_HISTORY_PAGE_SIZE
    return list(reversed(_message_qs(room).order_by("-seq")[:limit]))


def message_list_before(*, room: Room, before_seq: int, limit: int | None = None) -> list[Message]:
    """The ``limit`` messages just older than ``before_seq``, oldest first."""
    limit = limit or settings.PARLEY_HISTORY_PAGE_SIZE
    qs = _message_qs(room).filter(seq__lt=before_seq).order_by("-seq")[:limit]
    return list(reversed(qs))


def message_list_after(
    *, room: Room, after_seq: int, limit: int, upto_seq: int | None = None
) -> list[Message]:
    """Messages newer than ``after_seq`` (and at most ``upto_seq``) in seq order: catch-up
    after a reconnect, or a gap the channel layer left."""
    qs = _message_qs(room).filter(seq__gt=after_seq)
    if upto_seq is not None:
        qs = qs.filter(seq__lte=upto_seq)
    return list(qs.order_by("seq")[:limit])


def message_changes_after(
    *, room: Room, after: int, limit: int, upto: int | None = None
) -> list[Message]:
    """The current state of every message created or changed after seq ``after`` (and at most
    ``upto``), each once, in version order — a deleted one as its tombstone. Catch-up after a
    disconnect and the gaps the channel layer leaves; the (room, version) index serves it."""
    qs = _message_qs(room).filter(version__gt=after)
    if upto is not None:
        qs = qs.filter(version__lte=upto)
    return list(qs.order_by("version")[:limit])


def room_last_seq(*, room: Room) -> int:
    return Room.objects.filter(pk=room.pk).values_list("last_seq", flat=True).first() or 0


def room_last_seqs(room_ids) -> dict[int, int]:
    """{room id: last seq} for many rooms in one query (the fan-out hub's periodic check)."""
    return dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "last_seq"))
