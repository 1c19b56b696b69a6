"""A socket's unread counts, kept live without the database (pure: no I/O, no Django).

Each socket of a user keeps, per room of its user's memberships, a ``RoomCounts``: the read
pointer, the unread and mention counts, and ``through`` — the room seq up to which every change
is reflected in them. It starts from a database snapshot (``selectors.unread_states``: counts
and ``through`` read in one statement) and then applies each ``room.change`` event's ``meta``
(realtime.change_meta, the same for every recipient) with a seq above ``through``:

- a new message above the pointer, not one's own: unread + 1 (and mentions + 1 when it names
  the user or @room);
- a delete of such a message: the same, back;
- an edit that changed its mentions (``before``): mentions ± 1;
- one's own new message: the pointer moves to it, as it did in the database (counts that were
  not zero are re-read: which counted messages it passed is not known here);
- a new message while the socket *reads live* (its page is focused, at the bottom of the room:
  the ``active`` frame) and nothing is unread: read at once — the pointer moves to it, no
  number changes, no frame, no notification (``READ``: the hub writes such pointers in one
  batch a second, ``fanout.Hub.read_later``).

``read_to`` applies a pointer moved elsewhere (another socket's live reading): exact without
the database when every counted message is at or below the new pointer (``newest`` bounds
them), else the counts are re-read.

Exactness is the point (the issue's "unread that never drifts"):

- **Snapshot + replay.** A snapshot read while events were on their way reflects the events
  up to its ``through`` and none above. Applied over the counts, it replaces them, and the
  recent events above its ``through`` (``Fact`` s the hub keeps per room) are applied again.
  Whatever the order of event and snapshot, each change is counted once.
- **Out of order.** Events of one room published by different processes can overtake each
  other. ``through`` only moves over consecutive seqs; a seq further on is remembered in
  ``ahead`` until the gap closes. ``through`` below the room's last seq for longer than an
  event takes to arrive therefore means one was lost: the hub's periodic refresh re-reads the
  snapshot (fanout.Hub.refresh).
- **The cap.** Counts are capped like the database's (``CAP``, "99+"). A count at the cap is
  "at least CAP": a decrement from there cannot be computed and marks the counts ``stale``
  (re-read from the database). Counts may dip below zero for a moment when a delete overtakes
  its message (the message then comes and brings it back); frames show them clamped.
- **Older snapshots.** One whose ``through`` is below the last one applied is older than what
  the counts already reflect and is ignored.
"""

CAP = 100  # = selectors.UNREAD_CAP (a test holds them equal)

NEW, UPDATE, DELETE = "new", "update", "delete"
NOTIFY_ALL, NOTIFY_MENTIONS, NOTIFY_NONE = "all", "mentions", "none"
DM = "dm"

# What ``RoomCounts.apply`` did, as bits: the change was counted (it was above ``through``
# and not seen before), a number changed, the user is to be notified.
SKIPPED = 0
APPLIED = 1
CHANGED = 2
NOTIFY = 4
READ = 8  # read live: the pointer moved to the message, to be written (not a frame)

_NO_ONE: frozenset = frozenset()


class Fact:
    """One ``room.change`` event as the counts read it, built once per event for every
    socket (``from_event``). ``notify_frame`` is a slot for the notification frame, also
    built once (by the first socket that needs it)."""

    __slots__ = (
        "room",
        "message",
        "seq",
        "kind",
        "msg_seq",
        "author",
        "mentions",
        "everyone",
        "before",
        "author_name",
        "text",
        "room_name",
        "notify_frame",
    )

    def __init__(
        self,
        *,
        room: int,
        seq: int,
        kind: str,
        msg_seq: int,
        author,
        mentions=(),
        everyone: bool = False,
        before: tuple[frozenset, bool] | None = None,
        message=None,
        author_name: str = "",
        text: str = "",
        room_name: str = "",
    ):
        self.room = room
        self.message = message
        self.seq = seq
        self.kind = kind
        self.msg_seq = msg_seq
        self.author = author
        self.mentions = frozenset(mentions) if mentions else _NO_ONE
        self.everyone = everyone
        self.before = before
        self.author_name = author_name
        self.text = text
        self.room_name = room_name
        self.notify_frame = None

    @classmethod
    def from_event(cls, event: dict) -> "Fact | None":
        """None for an event without ``meta`` (published by an older process): the counts
        cannot apply it, and the periodic refresh re-reads them."""
        meta = event.get("meta")
        if not isinstance(meta, dict):
            return None
        before = meta.get("before")
        if isinstance(before, dict):
            before = (frozenset(before.get("mentions") or ()), bool(before.get("everyone")))
        else:
            before = None
        return cls(
            room=event["room"],
            seq=event["seq"],
            kind=meta.get("kind", UPDATE),
            msg_seq=meta["msg_seq"],
            author=meta.get("author"),
            mentions=meta.get("mentions") or (),
            everyone=bool(meta.get("everyone")),
            before=before,
            message=event.get("id"),
            author_name=meta.get("author_name") or "",
            text=meta.get("text") or "",
            room_name=meta.get("room_name") or "",
        )

    def names(self, user_id) -> bool:
        """Does the message (as it is now) mention ``user_id``, by name or @room?"""
        return self.everyone or user_id in self.mentions


def _clamp(n: int) -> int:
    return 0 if n < 0 else (CAP if n > CAP else n)


class RoomCounts:
    """One room's numbers for one user, live. ``snapshot`` sets them from the database (and
    replays what came since); ``apply`` counts one event."""

    __slots__ = (
        "room_id",
        "kind",
        "notify",
        "role",
        "pointer",
        "unread",
        "mentions",
        "through",
        "ahead",
        "snap_through",
        "stale",
        "newest",
    )

    def __init__(self, room_id: int):
        self.room_id = room_id
        self.kind = ""
        self.notify = NOTIFY_MENTIONS
        self.role = ""
        self.pointer = 0
        self.unread = 0
        self.mentions = 0
        # Every change with seq <= through is reflected; ``ahead``: seqs above it applied
        # already (arrived out of order), None when there are none (the usual case).
        self.through = -1
        self.ahead: set[int] | None = None
        self.snap_through = -1  # the ``through`` of the last snapshot applied
        self.stale = False  # a number is unknown (a decrement at the cap): re-read it
        # No counted message is above this seq (read_to): the newest counted new message, or
        # a snapshot's ``through`` when it counted some.
        self.newest = 0

    @property
    def muted(self) -> bool:
        return self.notify == NOTIFY_NONE

    def shown(self) -> tuple:
        """What a frame shows: a change of it is worth a frame."""
        return (_clamp(self.unread), _clamp(self.mentions), self.muted, self.pointer)

    def as_sync(self) -> dict:
        return {
            "unread": _clamp(self.unread),
            "mentions": _clamp(self.mentions),
            "notify": self.notify,
            "muted": self.muted,
            "pointer": self.pointer,
            "kind": self.kind,
        }

    def snapshot(self, state: dict, replay=(), user_id=None) -> bool:
        """Take ``state`` (an ``UnreadState.as_dict()``) and apply the ``replay`` facts above
        its ``through`` again. False (and nothing changes) when it is older than the last
        snapshot applied. Notifies nobody: these changes were notified when they arrived."""
        through = state["through"]
        if through < self.snap_through:
            return False
        self.kind = state.get("kind", self.kind)
        self.notify = state.get("notify", self.notify)
        self.role = state.get("role", self.role)
        self.pointer = state["pointer"]
        self.unread = state["unread"]
        self.mentions = state["mentions"]
        self.through = self.snap_through = through
        self.ahead = None
        self.stale = False
        self.newest = through if (self.unread or self.mentions) else 0
        for fact in sorted((f for f in replay if f.seq > through), key=_by_seq):
            self.apply(user_id, fact)
        return True

    def apply(self, user_id, fact: Fact, live: bool = False) -> int:
        """Count one change (bits: APPLIED, CHANGED, NOTIFY, READ; SKIPPED when it is
        reflected already). Cheap: called for every socket of every member on every change.
        ``live``: the socket reads the room live (a new message with nothing unread is read
        at once)."""
        seq = fact.seq
        through = self.through
        if seq <= through:
            return SKIPPED
        if seq == through + 1:
            ahead = self.ahead
            if ahead:
                through = seq
                while through + 1 in ahead:
                    through += 1
                    ahead.discard(through)
                if not ahead:
                    self.ahead = None
                self.through = through
            else:
                self.through = seq
        elif self.ahead is None:
            self.ahead = {seq}
        elif seq in self.ahead:
            return SKIPPED
        else:
            self.ahead.add(seq)
        if fact.author == user_id:
            if fact.kind == NEW and fact.msg_seq > self.pointer:
                # Posting moves one's own pointer to the post (services.message_send): what
                # was unread before it is read now. Which of the counted messages lie below
                # it is not known here, unless none were counted: else re-read the counts.
                self.pointer = fact.msg_seq
                if self.unread or self.mentions:
                    self.stale = True
                return APPLIED | CHANGED
            return APPLIED  # one's own: counts for nothing
        if fact.msg_seq <= self.pointer:
            return APPLIED  # read already: counts for nothing
        kind = fact.kind
        if kind == NEW:
            if live and not self.unread and not self.mentions:
                self.pointer = fact.msg_seq
                return APPLIED | READ
            if fact.msg_seq > self.newest:
                self.newest = fact.msg_seq
            result = APPLIED
            if self.unread < CAP:
                self.unread += 1
                result = APPLIED | CHANGED
            named = fact.everyone or user_id in fact.mentions
            if named and self.mentions < CAP:
                self.mentions += 1
                result = APPLIED | CHANGED
            notify = self.notify
            if notify == NOTIFY_ALL or (notify == NOTIFY_MENTIONS and (named or self.kind == DM)):
                result |= NOTIFY
            return result
        if kind == DELETE:
            result = self._less("unread")
            if fact.everyone or user_id in fact.mentions:
                result |= self._less("mentions")
            return result
        before = fact.before
        if before is None:
            return APPLIED  # an edit that kept its mentions, a reaction, a re-rendered quote
        was = before[1] or user_id in before[0]
        now = fact.everyone or user_id in fact.mentions
        if was == now:
            return APPLIED
        if now:
            if self.mentions < CAP:
                self.mentions += 1
                return APPLIED | CHANGED
            return APPLIED
        return self._less("mentions")

    def read_to(self, pointer: int) -> bool:
        """The pointer moved forward to ``pointer`` elsewhere (live reading on another
        socket). True when what a frame shows changed; marks the counts ``stale`` when
        counted messages may lie above it."""
        if pointer <= self.pointer:
            return False
        self.pointer = pointer
        if self.unread or self.mentions:
            if self.newest <= pointer:
                self.unread = self.mentions = 0
            else:
                self.stale = True
        return True

    def _less(self, name: str) -> int:
        value = getattr(self, name)
        if value >= CAP:
            self.stale = True  # "at least CAP" minus one: unknown
            return APPLIED
        setattr(self, name, value - 1)
        return APPLIED | CHANGED

    def behind(self, last_seq: int) -> bool:
        """Is a change up to the room's ``last_seq`` (read from the database) not counted?"""
        return self.through < last_seq


def _by_seq(fact: Fact) -> int:
    return fact.seq
