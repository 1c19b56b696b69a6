"""Read receipts (issue 11): who has read how far, derived from the read pointers
(``Membership.last_read_seq``) — no table of its own.

The rule, in one place for the page, the API and the live frames:

- only in rooms of at most ``RECEIPTS_MAX_MEMBERS`` members (every DM is one): above that
  there are no receipts at all (the page shows none, the API answers ``[]``, no frame);
- a member whose ``Profile.send_read_receipts`` is off is never in them;
- a viewer whose own setting is off sees nobody's (the fair rule of the messengers): ``[]``.

Pointers come as ``[user id, last_read_seq]`` pairs ordered by user id, the viewer included
when they send receipts (the live frame is the same for everyone, so the page skips itself)."""

from django.db.models import OuterRef

from apps.profiles.models import Profile

from .models import Membership, Room
from .selectors import member_count

RECEIPTS_MAX_MEMBERS = 10


def sends_receipts(user_id) -> bool:
    """Does this user send (and so see) read receipts? A user without a profile has the
    default (on)."""
    return receipt_setting(user_id)[0]


def receipt_setting(user_id) -> tuple[bool, object]:
    """(sends receipts, the profile's ``updated_at``: what a later check compares)."""
    found = Profile.objects.filter(user_id=user_id).values_list("send_read_receipts", "updated_at")
    row = found.first()
    return (True, None) if row is None else (bool(row[0]), row[1])


def _rows(room_id: int) -> list[tuple[int, int, bool | None]]:
    """(user id, pointer, sends) of the room's members, at most one more than the limit."""
    rows = (
        Membership.objects.filter(room_id=room_id)
        .order_by("user_id")
        .values_list("user_id", "last_read_seq", "user__profile__send_read_receipts")
    )
    return list(rows[: RECEIPTS_MAX_MEMBERS + 1])


def room_receipts(*, room: Room, viewer) -> list[tuple[int, int]]:
    """The pointers ``viewer`` may see in ``room`` (the caller checked that the room is
    visible to them): one query when the viewer is a member, two otherwise (their setting)."""
    if viewer is None or not viewer.is_authenticated:
        return []
    rows = _rows(room.pk)
    if len(rows) > RECEIPTS_MAX_MEMBERS:
        return []
    mine = next((sends for user_id, _seq, sends in rows if user_id == viewer.pk), _NOT_MEMBER)
    if mine is _NOT_MEMBER:
        mine = sends_receipts(viewer.pk)
    if mine is False:
        return []
    return [(user_id, seq) for user_id, seq, sends in rows if sends is not False]


_NOT_MEMBER = object()


def receipts_of_rooms(room_ids) -> dict[int, list[list[int]]]:
    """{room id: [[user id, pointer], ...]} of the receipt senders of each of these rooms that
    has receipts (at most RECEIPTS_MAX_MEMBERS members; the others are missing): ONE query
    whatever the number of rooms — the emitters' (a pointer batch of many rooms)."""
    room_ids = list(room_ids)
    if not room_ids:
        return {}
    rows = (
        Membership.objects.filter(room_id__in=room_ids)
        .annotate(room_size=member_count(OuterRef("room_id")))
        .filter(room_size__lte=RECEIPTS_MAX_MEMBERS)
        .order_by("room_id", "user_id")
        .values_list("room_id", "user_id", "last_read_seq", "user__profile__send_read_receipts")
    )
    found: dict[int, list[list[int]]] = {}
    for room_id, user_id, seq, sends in rows:
        pairs = found.setdefault(room_id, [])
        if sends is not False:
            pairs.append([user_id, seq])
    return found


def receipt_people(*, room: Room) -> list[dict]:
    """For the page of a room with receipts: each member's id, name, profile (the small
    avatars), whether they send receipts and their pointer; [] for a larger room. One
    query."""
    members = list(
        Membership.objects.filter(room=room)
        .select_related("user__profile")
        .order_by("user_id")[: RECEIPTS_MAX_MEMBERS + 1]
    )
    if len(members) > RECEIPTS_MAX_MEMBERS:
        return []
    people = []
    for member in members:
        profile = getattr(member.user, "profile", None)
        name = profile.name if profile is not None else member.user.get_username()
        sends = profile is None or profile.send_read_receipts
        people.append(
            {
                "id": member.user_id,
                "name": name,
                "profile": profile,
                "sends": sends,
                "seq": member.last_read_seq,
            }
        )
    return people
