"""Reads. Every room lookup starts from ``Room.objects.visible_to(user)`` — the one access rule.

Unread state (``unread_states``) is derived, never counted up: a membership's read pointer
against the room's messages, in one SQL statement per user whatever the number of rooms, with
each count capped at ``UNREAD_CAP`` so a room far behind costs no more than one just behind."""

from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db.models import (
    Aggregate,
    Case,
    CharField,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Least
from django.urls import reverse

from apps.core import text
from apps.profiles.models import Profile

from .models import Membership, Mention, Message, Reaction, Room, room_kind

UNREAD_CAP = 100  # counts stop here; the UI shows "99+" from this on


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


def with_dm_members(rooms: QuerySet[Room]) -> QuerySet[Room]:
    """Prefetch the two participants (with profiles) of the direct conversations among
    ``rooms`` into ``room.member_list``, so ``room_title_for`` costs no query per room. Only a
    DM is titled by its members: the members of public rooms and private groups, possibly
    many, are not loaded (their ``member_list`` is empty)."""
    members = Membership.objects.filter(room__dm_key__isnull=False).select_related("user__profile")
    return rooms.prefetch_related(Prefetch("memberships", queryset=members, to_attr="member_list"))


def room_title_for(*, room: Room, user) -> str:
    """A room's name; for a 1:1 conversation, the other participant's display name."""
    if not room.is_private or room.dm_key is None:
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


class _IdList(Aggregate):
    """The values as one comma-separated string (GROUP_CONCAT; STRING_AGG on PostgreSQL)."""

    function = "GROUP_CONCAT"
    template = "%(function)s(%(expressions)s)"
    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            template="STRING_AGG(CAST(%(expressions)s AS TEXT), ',')",
            **extra_context,
        )


def with_mention_ids(messages: QuerySet[Message]) -> QuerySet[Message]:
    """Annotate each message with the ids of the users it mentions (``mention_csv``, read by
    ``Message.mention_ids``): a correlated subquery on the (message, user) index, so the
    mentions cost no query of their own."""
    ids = (
        Mention.objects.filter(message=OuterRef("pk"))
        .order_by()
        .values("message")
        .annotate(ids=_IdList("user_id"))
        .values("ids")
    )
    return messages.annotate(mention_csv=Subquery(ids, output_field=CharField()))


def with_timeline(messages: QuerySet[Message]) -> QuerySet[Message]:
    """Everything a message's article and its events show, in a constant number of queries
    whatever the number of messages: the author's profile, the replied-to message and its
    author (one join), the mentioned user ids (a subquery in the same statement), and the
    reactions with who reacted (one prefetch query), and the attachments of the messages that
    have any (one query, none when no message of the batch has files:
    ``MessageQuerySet.with_files``)."""
    reactions = Reaction.objects.select_related("user__profile").order_by("created_at", "pk")
    messages = messages.select_related("author__profile", "reply_to__author__profile")
    messages = with_mention_ids(messages).prefetch_related(
        Prefetch("reactions", queryset=reactions)
    )
    return messages.with_files()


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


@dataclass
class AroundPage:
    """Messages around a target (``?around=<seq>``): ``messages`` oldest first, the target
    among them, and whether newer messages exist beyond the last one."""

    messages: list
    target: Message
    has_newer: bool


def message_list_around(
    *, room: Room, seq: int, before: int = 25, after: int = 25
) -> AroundPage | None:
    """``before`` messages older than the one at ``seq`` (or the first after it, if that seq
    was a reaction or an edit), it, and ``after`` newer ones. None when no message of the room
    is at or after ``seq``. Two keyset queries (plus their reaction prefetches)."""
    newer = list(_message_qs(room).filter(seq__gte=seq).order_by("seq")[: after + 2])
    if not newer:
        return None
    older = list(reversed(_message_qs(room).filter(seq__lt=newer[0].seq).order_by("-seq")[:before]))
    has_newer = len(newer) > after + 1
    return AroundPage(messages=older + newer[: after + 1], target=newer[0], has_newer=has_newer)


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


# --- Membership, unread, sidebar -------------------------------------------------------------


def room_membership(*, room: Room, user) -> Membership | None:
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(room=room, user=user).first()


@dataclass(frozen=True)
class Access:
    """What a service needs to decide an action, from one indexed query."""

    visible: bool
    role: str | None = None  # the user's role in the room; None when not a member
    room_mentions: str = Room.RoomMentions.MEMBERS  # the @room policy, as it is now
    postable: bool = False  # may post (Room.objects.postable_by); asked with posting=True

    @property
    def is_member(self) -> bool:
        return self.role is not None


def room_access(*, room: Room, user, posting: bool = False) -> Access:
    """May ``user`` see the room, with which role (None: not a member, e.g. of a public room
    they have not joined) and the room's current @room policy: one query. With ``posting``
    (sending, editing, reacting) it asks ``Room.objects.postable_by`` instead (a second query
    only when that refuses, to tell "no such room" from "read-only")."""
    if user is None or not user.is_authenticated:
        return Access(visible=False)
    role = Membership.objects.filter(room=OuterRef("pk"), user=user).values("role")[:1]
    if posting:
        # The hot path (every message): one query against postable_by, which is a subset of
        # visible_to. Only a refusal asks the second question: not visible, or read-only?
        rows = Room.objects.postable_by(user).filter(pk=room.pk).annotate(my_role=Subquery(role))
        found = list(rows.values_list("my_role", "room_mentions"))
        if found:
            my_role, room_mentions = found[0]
            return Access(visible=True, role=my_role, room_mentions=room_mentions, postable=True)
    rows = Room.objects.visible_to(user).filter(pk=room.pk).annotate(my_role=Subquery(role))
    found = list(rows.values_list("my_role", "room_mentions"))
    if not found:
        return Access(visible=False)
    my_role, room_mentions = found[0]
    return Access(visible=True, role=my_role, room_mentions=room_mentions)


def room_members(
    *, room: Room, query: str | None = None, limit: int | None = None
) -> list[Membership]:
    """The room's memberships with user and profile, owners first, then by joining order.
    ``query`` (the mention autocomplete): active members whose username, display name or a
    word of it starts with it, ignoring case and a leading "@"; at most ``limit``."""
    owners_first = Case(When(role=Membership.Role.OWNER, then=Value(0)), default=Value(1))
    members = Membership.objects.filter(room=room)
    if query is not None:
        if text.has_control_character(query):
            return []  # no name has one (and NUL is a database error on PostgreSQL)
        query = query.strip().lstrip("@")
        members = members.filter(user__is_active=True)
        if query:
            members = members.filter(
                Q(user__username__istartswith=query)
                | Q(user__profile__display_name__istartswith=query)
                | Q(user__profile__display_name__icontains=" " + query)
            )
    members = members.select_related("user__profile").order_by(owners_first, "joined_at", "pk")
    return list(members[:limit] if limit is not None else members)


def member_count(room_ref: OuterRef) -> Subquery:
    """A correlated subquery: the number of members of the room ``room_ref`` names (NULL
    for a room without any)."""
    count = (
        Membership.objects.filter(room=room_ref)
        .order_by()
        .values("room")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(count, output_field=IntegerField())


def with_membership(rooms: QuerySet[Room], *, user) -> QuerySet[Room]:
    """Annotate rooms with the user's membership (``is_member``, ``role``, ``notify``,
    ``last_read_seq``: None when not a member) and ``member_count``: subqueries in the same
    statement, no query per room."""
    mine = Membership.objects.filter(room=OuterRef("pk"), user_id=getattr(user, "pk", None))
    return rooms.annotate(
        is_member=Exists(mine),
        role=Subquery(mine.values("role")[:1]),
        notify=Subquery(mine.values("notify")[:1]),
        last_read_seq=Subquery(mine.values("last_read_seq")[:1]),
        member_count=Coalesce(member_count(OuterRef("pk")), Value(0)),
    )


def directory(*, user) -> list[Room]:
    """The public rooms (the home page's directory), newest activity first, each with
    ``is_member``, ``role``, ``member_count`` (and the rest of ``with_membership``). One
    query."""
    return list(with_membership(public_room_list(user=user), user=user))


@dataclass
class UnreadState:
    """A user's read state in one room. ``through`` is the room's last seq read in the same
    statement as the counts: every change with seq <= through is reflected, none above it."""

    room_id: int
    kind: str
    role: str
    notify: str
    pointer: int
    unread: int
    mentions: int
    through: int

    @property
    def muted(self) -> bool:
        return self.notify == Membership.Notify.NONE

    def as_dict(self) -> dict:
        return asdict(self)


class _CappedCount(Subquery):
    """``(SELECT COUNT(*) FROM (<the queryset, at most cap rows>) _capped)``: a count that
    stops reading at ``cap`` rows (a plain correlated COUNT would read every unread row)."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) _capped)"

    def __init__(self, queryset: QuerySet, cap: int = UNREAD_CAP):
        # Ordered by seq: without it PostgreSQL may walk the room's whole (room) FK index,
        # filtering on seq, instead of the (room, seq) range above the pointer.
        rows = queryset.order_by("seq").values("pk")[:cap]
        super().__init__(rows, output_field=IntegerField())


def _unread_counts(user_id: int) -> dict:
    """Annotations for a Membership queryset of ``user_id``: ``unread`` and ``mentions``,
    capped, correlated to each membership's room and pointer."""
    unread = Message.objects.filter(
        room=OuterRef("room_id"), seq__gt=OuterRef("last_read_seq"), deleted_at__isnull=True
    ).exclude(author_id=user_id)
    # Two disjoint parts, each read through its own index, never the room's other messages:
    # the @room messages (the partial (room, seq) index of Message) and the other messages
    # naming this user (Mention's (user, room, seq) index).
    everyone = unread.filter(mentions_room=True)
    named = Mention.objects.filter(
        user_id=user_id,
        room=OuterRef("room_id"),
        seq__gt=OuterRef("last_read_seq"),
        message__deleted_at__isnull=True,
        message__mentions_room=False,
    ).exclude(message__author_id=user_id)
    return {
        "unread": _CappedCount(unread),
        "mentions": Least(
            _CappedCount(everyone) + _CappedCount(named),
            Value(UNREAD_CAP),
            output_field=IntegerField(),
        ),
    }


_STATE_FIELDS = (
    "room_id",
    "role",
    "notify",
    "last_read_seq",
    "room__is_private",
    "room__dm_key",
    "room__last_seq",
    "unread",
    "mentions",
)


def _state_rows(*, user_id: int, room_ids=None, extra: tuple[str, ...] = ()) -> QuerySet:
    memberships = Membership.objects.filter(user_id=user_id)
    if room_ids is not None:
        memberships = memberships.filter(room_id__in=list(room_ids))
    return memberships.annotate(**_unread_counts(user_id)).values(*_STATE_FIELDS, *extra)


def _state(row: dict) -> UnreadState:
    return UnreadState(
        room_id=row["room_id"],
        kind=room_kind(is_private=row["room__is_private"], dm_key=row["room__dm_key"]),
        role=row["role"],
        notify=row["notify"],
        pointer=row["last_read_seq"],
        unread=row["unread"],
        mentions=row["mentions"],
        through=row["room__last_seq"],
    )


def unread_states(*, user_id: int, room_ids=None) -> dict[int, UnreadState]:
    """{room id: UnreadState} for the user's memberships (only ``room_ids`` if given): ONE
    query. A message is unread when its seq is above the pointer, it is someone else's and it
    is not deleted (an edit or a reaction changes its version, never its seq: it does not
    become unread again); a mention when it also names the user or @room."""
    return {row["room_id"]: _state(row) for row in _state_rows(user_id=user_id, room_ids=room_ids)}


@dataclass
class SidebarEntry:
    room_id: int
    kind: str
    title: str
    url: str
    unread: int
    mentions: int
    notify: str
    muted: bool
    role: str
    topic: str
    pointer: int = 0
    through: int = 0
    activity_at: object = field(default=None, repr=False)
    # A DM's other participant (their presence dot) and their state at render time.
    partner_id: int | None = None
    presence: str = "offline"

    @property
    def state(self) -> dict:
        """The per-user numbers as the sockets' ``sync`` frame carries them."""
        return {
            "unread": self.unread,
            "mentions": self.mentions,
            "notify": self.notify,
            "muted": self.muted,
            "pointer": self.pointer,
            "kind": self.kind,
        }


@dataclass
class Sidebar:
    rooms: list[SidebarEntry]  # public rooms and private groups, by title
    dms: list[SidebarEntry]  # direct conversations, latest activity first

    @property
    def entries(self) -> list[SidebarEntry]:
        return [*self.rooms, *self.dms]


def sidebar(*, user) -> Sidebar:
    """The rooms ``user`` belongs to with their unread state: two queries whatever the number
    of rooms and messages (the memberships with rooms and counts; the other participant of
    the direct conversations, for their titles)."""
    if user is None or not user.is_authenticated:
        return Sidebar(rooms=[], dms=[])
    rows = list(
        _state_rows(
            user_id=user.pk,
            extra=("room__name", "room__topic", "room__last_message_at", "room__created_at"),
        )
    )
    dm_ids = [row["room_id"] for row in rows if row["room__dm_key"] is not None]
    others: dict[int, list[str]] = {}
    partners: dict[int, object] = {}  # DM room -> the other participant's profile
    if dm_ids:
        for member in (
            Membership.objects.filter(room_id__in=dm_ids)
            .exclude(user_id=user.pk)
            .select_related("user__profile")
            .order_by("pk")
        ):
            others.setdefault(member.room_id, []).append(_profile_name(member.user))
            partners.setdefault(member.room_id, getattr(member.user, "profile", None))
    # Their presence dots: one cache get_many, no query.
    from . import presence

    states = presence.states_for(p for p in partners.values() if p is not None)
    rooms, dms = [], []
    for row in rows:
        state = _state(row)
        if state.kind == Room.Kind.DM:
            title = ", ".join(others.get(state.room_id, ())) or _profile_name(user)
        else:
            title = row["room__name"] or f"room {state.room_id}"
        entry = SidebarEntry(
            room_id=state.room_id,
            kind=state.kind,
            title=title,
            url=reverse("chat:room_detail", kwargs={"pk": state.room_id}),
            unread=state.unread,
            mentions=state.mentions,
            notify=state.notify,
            muted=state.muted,
            role=state.role,
            topic=row["room__topic"],
            pointer=state.pointer,
            through=state.through,
            activity_at=row["room__last_message_at"] or row["room__created_at"],
        )
        partner = partners.get(state.room_id)
        if partner is not None:
            entry.partner_id = partner.user_id
            entry.presence = states.get(partner.user_id, "offline")
        (dms if state.kind == Room.Kind.DM else rooms).append(entry)
    rooms.sort(key=lambda e: (e.title.lower(), e.room_id))
    dms.sort(key=lambda e: (e.activity_at, e.room_id), reverse=True)
    return Sidebar(rooms=rooms, dms=dms)
