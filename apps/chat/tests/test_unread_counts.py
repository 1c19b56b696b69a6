"""unread.RoomCounts, alone: what a change counts for, snapshots and the events around them
(before, after, overtaking each other), the cap, and who is notified. No database, no socket.

The last test plays seeded random timelines — sends, edits that change mentions, reactions,
deletes — delivered out of order, with snapshots read at random points and applied at random
later points (as the hub does), and checks the live counts against the truth."""

import random

import pytest

from apps.chat import selectors, unread
from apps.chat.unread import APPLIED, CHANGED, NOTIFY, READ, SKIPPED, Fact, RoomCounts

ME, BOB, CAROL = 1, 2, 3
ROOM = 7


def state(*, through, pointer=0, unread_n=0, mentions=0, notify="mentions", kind="public"):
    return {
        "room_id": ROOM,
        "kind": kind,
        "role": "member",
        "notify": notify,
        "pointer": pointer,
        "unread": unread_n,
        "mentions": mentions,
        "through": through,
    }


def new(seq, author=BOB, mentions=(), everyone=False):
    return Fact(
        room=ROOM,
        seq=seq,
        kind="new",
        msg_seq=seq,
        author=author,
        mentions=mentions,
        everyone=everyone,
        message=100 + seq,
        author_name="Bob",
        text=f"text {seq}",
        room_name="general",
    )


def delete(seq, msg_seq, author=BOB, mentions=(), everyone=False):
    return Fact(
        room=ROOM,
        seq=seq,
        kind="delete",
        msg_seq=msg_seq,
        author=author,
        mentions=mentions,
        everyone=everyone,
    )


def edit(seq, msg_seq, author=BOB, mentions=(), everyone=False, before=None):
    if before is not None:
        before = (frozenset(before[0]), before[1])
    return Fact(
        room=ROOM,
        seq=seq,
        kind="update",
        msg_seq=msg_seq,
        author=author,
        mentions=mentions,
        everyone=everyone,
        before=before,
    )


def counts_at(through=0, **kwargs) -> RoomCounts:
    counts = RoomCounts(ROOM)
    counts.snapshot(state(through=through, **kwargs))
    return counts


def numbers(counts: RoomCounts) -> tuple[int, int]:
    shown = counts.shown()
    return shown[0], shown[1]


def test_the_cap_is_the_databases():
    assert unread.CAP == selectors.UNREAD_CAP


# --- what one change counts for ---------------------------------------------------------------


def test_someone_elses_new_message_above_the_pointer_is_unread():
    counts = counts_at(through=3, pointer=3)
    assert counts.apply(ME, new(4)) == APPLIED | CHANGED
    assert numbers(counts) == (1, 0) and counts.through == 4


def test_ones_own_message_counts_for_nothing_and_moves_ones_pointer():
    counts = counts_at(through=3, pointer=3)
    assert counts.apply(ME, new(4, author=ME)) == APPLIED | CHANGED
    assert numbers(counts) == (0, 0) and counts.through == 4 and counts.pointer == 4
    assert not counts.stale


def test_ones_own_message_past_unread_ones_asks_for_the_counts_again():
    counts = counts_at(through=1, pointer=1)
    counts.apply(ME, new(2))
    counts.apply(ME, new(3))
    assert numbers(counts) == (2, 0)
    counts.apply(ME, new(4, author=ME))
    assert counts.pointer == 4 and counts.stale  # which counted ones it passed: re-read


def test_a_message_at_or_below_the_pointer_counts_for_nothing():
    """(A pointer can be ahead of a message delivered late: a read that went past it.)"""
    counts = counts_at(through=3, pointer=5)
    assert counts.apply(ME, new(4)) == APPLIED
    assert numbers(counts) == (0, 0)


@pytest.mark.parametrize(
    ("mentions", "everyone", "named"),
    [((ME,), False, True), ((CAROL,), False, False), ((), True, True), ((CAROL, ME), True, True)],
)
def test_a_mention_by_name_or_at_room_counts_as_a_mention(mentions, everyone, named):
    counts = counts_at(through=0)
    counts.apply(ME, new(1, mentions=mentions, everyone=everyone))
    assert numbers(counts) == (1, int(named))


def test_a_change_already_reflected_is_skipped():
    counts = counts_at(through=5, unread_n=2)
    assert counts.apply(ME, new(5)) == SKIPPED
    assert counts.apply(ME, new(3)) == SKIPPED
    assert numbers(counts) == (2, 0)


def test_the_same_change_twice_counts_once():
    counts = counts_at(through=0)
    counts.apply(ME, new(1))
    assert counts.apply(ME, new(1)) == SKIPPED
    counts.apply(ME, new(3))  # ahead of a gap
    assert counts.apply(ME, new(3)) == SKIPPED
    assert numbers(counts) == (2, 0)


# --- deletes and edits --------------------------------------------------------------------------


def test_deleting_a_counted_message_uncounts_it_and_its_mention():
    counts = counts_at(through=0)
    counts.apply(ME, new(1, mentions=(ME,)))
    assert counts.apply(ME, delete(2, msg_seq=1, mentions=(ME,))) == APPLIED | CHANGED
    assert numbers(counts) == (0, 0)


def test_deleting_a_message_counted_in_the_snapshot_uncounts_it():
    counts = counts_at(through=4, pointer=2, unread_n=2, mentions=1)
    counts.apply(ME, delete(5, msg_seq=3, everyone=True))
    assert numbers(counts) == (1, 0)


@pytest.mark.parametrize(
    ("fact", "why"),
    [
        (delete(5, msg_seq=2), "at the pointer: read already"),
        (delete(5, msg_seq=4, author=ME), "one's own"),
    ],
)
def test_deleting_an_uncounted_message_changes_nothing(fact, why):
    counts = counts_at(through=4, pointer=2, unread_n=1)
    assert counts.apply(ME, fact) == APPLIED, why
    assert numbers(counts) == (1, 0)


def test_an_edit_that_adds_a_mention_of_me_counts_it():
    counts = counts_at(through=1, unread_n=1)
    counts.apply(ME, edit(2, msg_seq=1, mentions=(ME,), before=((CAROL,), False)))
    assert numbers(counts) == (1, 1)


def test_an_edit_that_removes_my_mention_uncounts_it():
    counts = counts_at(through=1, unread_n=1, mentions=1)
    counts.apply(ME, edit(2, msg_seq=1, mentions=(), before=((ME,), False)))
    assert numbers(counts) == (1, 0)


def test_an_edit_from_at_room_to_naming_me_is_still_one_mention():
    counts = counts_at(through=1, unread_n=1, mentions=1)
    assert counts.apply(ME, edit(2, msg_seq=1, mentions=(ME,), before=((), True))) == APPLIED
    assert numbers(counts) == (1, 1)


def test_an_edit_without_mention_changes_or_a_reaction_changes_nothing():
    counts = counts_at(through=1, unread_n=1, mentions=1)
    assert counts.apply(ME, edit(2, msg_seq=1, mentions=(ME,))) == APPLIED
    assert numbers(counts) == (1, 1) and counts.through == 2


def test_an_edit_of_a_read_message_changes_nothing():
    counts = counts_at(through=1, pointer=1)
    assert counts.apply(ME, edit(2, msg_seq=1, mentions=(ME,), before=((), False))) == APPLIED
    assert numbers(counts) == (0, 0)


# --- order --------------------------------------------------------------------------------------


def test_out_of_order_changes_move_through_once_the_gap_closes():
    counts = counts_at(through=0)
    counts.apply(ME, new(3))
    counts.apply(ME, new(2))
    assert counts.through == 0 and counts.ahead == {2, 3}
    assert counts.behind(3)
    counts.apply(ME, new(1))
    assert counts.through == 3 and counts.ahead is None and not counts.behind(3)
    assert numbers(counts) == (3, 0)


def test_a_delete_that_overtakes_its_message_nets_out():
    counts = counts_at(through=0)
    counts.apply(ME, delete(2, msg_seq=1, mentions=(ME,)))
    assert counts.unread == -1 and numbers(counts) == (0, 0)  # shown clamped
    counts.apply(ME, new(1, mentions=(ME,)))
    assert (counts.unread, counts.mentions) == (0, 0)


# --- snapshot and replay ----------------------------------------------------------------------


def test_an_event_before_the_snapshot_with_a_seq_above_its_through_is_replayed():
    """The event arrived (and was counted) while the snapshot was being read; the snapshot
    was read before the event committed: it lacks it, the replay adds it back."""
    counts = counts_at(through=2)
    event = new(3, mentions=(ME,))
    counts.apply(ME, event)
    assert counts.snapshot(state(through=2, unread_n=5, mentions=1), replay=[event], user_id=ME)
    assert numbers(counts) == (6, 2) and counts.through == 3


def test_an_event_before_the_snapshot_that_it_reflects_is_not_counted_twice():
    counts = counts_at(through=2)
    event = new(3)
    counts.apply(ME, event)
    counts.snapshot(state(through=3, unread_n=4), replay=[event], user_id=ME)
    assert numbers(counts) == (4, 0)


def test_an_event_after_the_snapshot_at_or_below_its_through_is_skipped():
    counts = counts_at(through=2)
    counts.snapshot(state(through=6, unread_n=4), replay=[], user_id=ME)
    assert counts.apply(ME, new(5)) == SKIPPED
    assert counts.apply(ME, delete(6, msg_seq=4)) == SKIPPED
    assert counts.apply(ME, new(7)) == APPLIED | CHANGED
    assert numbers(counts) == (5, 0)


def test_a_replayed_delete_of_a_message_the_snapshot_counted():
    counts = counts_at(through=3)
    gone = delete(4, msg_seq=2)
    counts.apply(ME, gone)
    counts.snapshot(state(through=3, unread_n=2), replay=[gone], user_id=ME)
    assert numbers(counts) == (1, 0)


def test_replayed_events_apply_in_seq_order_and_above_the_new_through_only():
    counts = counts_at(through=0)
    facts = [new(4), new(2), new(3), new(1)]
    counts.snapshot(state(through=2, unread_n=2), replay=facts, user_id=ME)
    assert numbers(counts) == (4, 0) and counts.through == 4 and counts.ahead is None


def test_an_older_snapshot_is_ignored():
    counts = counts_at(through=5, unread_n=3, pointer=1)
    assert not counts.snapshot(state(through=4, unread_n=9, pointer=0), replay=[], user_id=ME)
    assert numbers(counts) == (3, 0) and counts.pointer == 1


def test_a_snapshot_as_recent_replaces_the_pointer():
    """Same through, another pointer: a read (here or on another device) moved it."""
    counts = counts_at(through=5, unread_n=3, pointer=2)
    assert counts.snapshot(state(through=5, unread_n=0, pointer=5), replay=[], user_id=ME)
    assert numbers(counts) == (0, 0) and counts.pointer == 5


def test_a_snapshot_does_not_notify_what_it_replays():
    counts = counts_at(through=0, notify="all")
    counts.snapshot(state(through=0, notify="all"), replay=[new(1)], user_id=ME)
    assert numbers(counts) == (1, 0)  # counted; notifying is apply()'s result, not here


# --- the cap ------------------------------------------------------------------------------------


def test_at_the_cap_a_new_message_changes_nothing_shown():
    counts = counts_at(through=0, unread_n=unread.CAP)
    assert counts.apply(ME, new(1)) == APPLIED
    assert numbers(counts) == (unread.CAP, 0)


def test_a_decrement_from_the_cap_is_unknown_and_marks_the_counts_stale():
    counts = counts_at(through=1, unread_n=unread.CAP, mentions=unread.CAP)
    assert counts.apply(ME, delete(2, msg_seq=1, everyone=True)) == APPLIED
    assert counts.stale and numbers(counts) == (unread.CAP, unread.CAP)
    counts.snapshot(state(through=2, unread_n=unread.CAP - 1), replay=[], user_id=ME)
    assert not counts.stale and numbers(counts) == (unread.CAP - 1, 0)


# --- notifications ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notify", "kind", "fact", "expected"),
    [
        ("all", "public", new(1), True),
        ("mentions", "public", new(1), False),
        ("mentions", "public", new(1, mentions=(ME,)), True),
        ("mentions", "private", new(1, everyone=True), True),
        ("mentions", "dm", new(1), True),  # every DM message
        ("all", "dm", new(1), True),
        ("none", "dm", new(1, mentions=(ME,)), False),  # muted: never
        ("none", "public", new(1, everyone=True), False),
        ("all", "public", new(1, author=ME), False),  # never one's own
        ("all", "public", edit(1, msg_seq=0), False),  # never an edit
        ("all", "public", delete(1, msg_seq=0), False),
    ],
)
def test_who_is_notified(notify, kind, fact, expected):
    counts = counts_at(through=0, notify=notify, kind=kind)
    assert bool(counts.apply(ME, fact) & NOTIFY) is expected


def test_a_message_already_read_does_not_notify():
    counts = counts_at(through=0, pointer=3, notify="all")
    assert not counts.apply(ME, new(1)) & NOTIFY


def test_muted_counts_still_count_and_say_so():
    counts = counts_at(through=0, notify="none")
    counts.apply(ME, new(1, mentions=(ME,)))
    assert counts.shown() == (1, 1, True, 0)
    assert counts.as_sync() == {
        "unread": 1,
        "mentions": 1,
        "notify": "none",
        "muted": True,
        "pointer": 0,
        "kind": "public",
    }


# --- live reading -------------------------------------------------------------------------------


def test_reading_live_a_new_message_with_nothing_unread_is_read_at_once():
    counts = counts_at(through=0, notify="all")
    assert counts.apply(ME, new(1, mentions=(ME,)), live=True) == APPLIED | READ  # no NOTIFY
    assert counts.shown() == (0, 0, False, 1)
    assert counts.through == 1


def test_reading_live_with_something_unread_counts_as_usual():
    """The pointer is behind what the page shows (its "active" read is on its way): the
    message counts, so the frame that says so brings the page to read again."""
    counts = counts_at(through=2, unread_n=1)
    assert counts.apply(ME, new(3), live=True) == APPLIED | CHANGED
    assert numbers(counts) == (2, 0)


@pytest.mark.parametrize(
    "fact",
    [delete(2, 1), edit(2, 1, mentions=(ME,), before=(frozenset(), False)), new(2, author=ME)],
    ids=["delete", "edit", "own"],
)
def test_reading_live_reads_only_others_new_messages(fact):
    counts = counts_at(through=1)
    assert not counts.apply(ME, fact, live=True) & READ


def test_read_to_clears_counts_when_every_counted_message_is_below_it():
    counts = counts_at(through=0)
    counts.apply(ME, new(1, mentions=(ME,)))
    counts.apply(ME, new(2))
    assert counts.read_to(2)
    assert counts.shown() == (0, 0, False, 2) and not counts.stale


def test_read_to_below_a_counted_message_asks_for_the_counts_again():
    counts = counts_at(through=0)
    counts.apply(ME, new(1))
    counts.apply(ME, new(2))
    assert counts.read_to(1)
    assert counts.stale and counts.pointer == 1


def test_read_to_after_a_snapshot_that_counted_is_bounded_by_its_through():
    counts = counts_at(through=5, unread_n=2)
    assert counts.read_to(4) and counts.stale  # some of the two may be above 4
    counts = counts_at(through=5, unread_n=2)
    assert counts.read_to(5) and not counts.stale and numbers(counts) == (0, 0)


def test_read_to_backwards_or_in_place_changes_nothing():
    counts = counts_at(through=3, pointer=3)
    assert not counts.read_to(3) and not counts.read_to(1)
    assert counts.pointer == 3


# --- facts from events --------------------------------------------------------------------------


def test_a_fact_reads_the_events_meta():
    event = {
        "type": "room.change",
        "room": 4,
        "id": 99,
        "seq": 12,
        "html": "<article>",
        "meta": {
            "kind": "update",
            "msg_seq": 10,
            "author": BOB,
            "mentions": [ME, CAROL],
            "everyone": False,
            "before": {"mentions": [CAROL], "everyone": True},
        },
    }
    fact = Fact.from_event(event)
    assert (fact.room, fact.seq, fact.kind, fact.msg_seq, fact.author, fact.message) == (
        4,
        12,
        "update",
        10,
        BOB,
        99,
    )
    assert fact.mentions == {ME, CAROL} and fact.before == (frozenset({CAROL}), True)
    assert fact.names(ME) and not fact.names(BOB)


def test_an_event_without_meta_is_no_fact():
    assert Fact.from_event({"type": "chat.message", "room": 1, "seq": 3, "html": ""}) is None


# --- random timelines against the truth -------------------------------------------------------


def truth(events: list[dict], through: int, pointer: int, cap: int) -> tuple[int, int]:
    """The counts a database snapshot at ``through`` shows: from the messages' states."""
    messages: dict[int, dict] = {}
    for event in events[:through]:
        if event["kind"] == "new":
            messages[event["msg_seq"]] = dict(event, deleted=False)
        elif event["kind"] == "delete":
            messages[event["msg_seq"]]["deleted"] = True
        else:
            messages[event["msg_seq"]].update(
                mentions=event["mentions"], everyone=event["everyone"]
            )
    alive = [
        m for seq, m in messages.items() if seq > pointer and m["author"] != ME and not m["deleted"]
    ]
    named = [m for m in alive if m["everyone"] or ME in m["mentions"]]
    return min(len(alive), cap), min(len(named), cap)


def random_timeline(rng: random.Random, length: int) -> list[dict]:
    events, alive = [], {}
    for seq in range(1, length + 1):
        roll = rng.random()
        mentions = tuple(u for u in (ME, CAROL) if rng.random() < 0.3)
        everyone = rng.random() < 0.1
        if not alive or roll < 0.5:
            author = rng.choice((ME, BOB, CAROL, BOB))
            event = {"kind": "new", "msg_seq": seq, "author": author}
            event.update(mentions=mentions, everyone=everyone, before=None)
            alive[seq] = event
        else:
            msg_seq = rng.choice(sorted(alive))
            message = alive[msg_seq]
            if roll < 0.7:  # an edit (by its author), maybe changing its mentions
                changed = (mentions, everyone) != (message["mentions"], message["everyone"])
                before = (frozenset(message["mentions"]), message["everyone"]) if changed else None
                event = dict(message, kind="update", mentions=mentions, everyone=everyone)
                event["before"] = before
                message.update(mentions=mentions, everyone=everyone)
            elif roll < 0.8:  # a reaction
                event = dict(message, kind="update", before=None)
            else:
                event = dict(message, kind="delete", before=None)
                del alive[msg_seq]
        events.append(dict(event, seq=seq))
    return events


def as_fact(event: dict) -> Fact:
    return Fact(
        room=ROOM,
        seq=event["seq"],
        kind=event["kind"],
        msg_seq=event["msg_seq"],
        author=event["author"],
        mentions=event["mentions"],
        everyone=event["everyone"],
        before=event["before"],
    )


@pytest.mark.parametrize("cap", [3, 100])
def test_random_timelines_delivered_out_of_order_with_snapshots_match_the_truth(cap, monkeypatch):
    """For each seed: a timeline of 40 changes, delivered shuffled a few places; snapshots of
    the truth taken at random seqs (the pointer moving on some) are applied a little later, as
    a read on another device does, with the replay of every event delivered so far (the hub's
    recent facts). Whenever the counts are not stale and no event is missing, they are the
    truth; at the end, after a fresh snapshot wherever they went stale, they are too."""
    monkeypatch.setattr(unread, "CAP", cap)
    for seed in range(300):
        rng = random.Random(seed)
        events = random_timeline(rng, 40)
        order = sorted(range(40), key=lambda i: i + rng.uniform(0, 4))  # overtaking, a little
        pointer = 0
        counts = RoomCounts(ROOM)
        counts.snapshot(state(through=0))
        delivered: list[Fact] = []
        pending: list[tuple[int, dict]] = []  # (deliver after this many events, state)
        for step, index in enumerate(order):
            fact = as_fact(events[index])
            delivered.append(fact)
            counts.apply(ME, fact)
            if rng.random() < 0.2:  # a snapshot read now: it reflects what has committed
                committed = max(f.seq for f in delivered)
                if rng.random() < 0.5:
                    pointer = rng.randint(pointer, committed)
                unread_n, mentions = truth(events, committed, pointer, cap)
                snap = state(through=committed, pointer=pointer, unread_n=unread_n)
                snap["mentions"] = mentions
                pending.append((step + rng.randint(0, 3), snap))
            for due, snap in [p for p in pending if p[0] <= step]:
                pending.remove((due, snap))
                counts.snapshot(snap, replay=delivered, user_id=ME)
            if counts.ahead is None and not counts.stale and counts.pointer == pointer:
                expected = truth(events, counts.through, pointer, cap)
                assert numbers(counts) == expected, (seed, step)
        for _, snap in pending:
            counts.snapshot(snap, replay=delivered, user_id=ME)
        assert counts.through == 40 and counts.ahead is None, seed
        if counts.stale:  # what the stream does then: read the database again
            unread_n, mentions = truth(events, 40, counts.pointer, cap)
            fresh = state(through=40, pointer=counts.pointer, unread_n=unread_n)
            fresh["mentions"] = mentions
            counts.snapshot(fresh, replay=delivered, user_id=ME)
        assert numbers(counts) == truth(events, 40, counts.pointer, cap), seed
