"""Unread state: derived from the read pointer and the room's messages, one statement per user,
capped counts. Runs on SQLite and on PostgreSQL (DATABASE_URL)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.chat import selectors, services
from apps.chat.models import Membership, Room
from apps.chat.selectors import UNREAD_CAP, UnreadState, sidebar, unread_states

pytestmark = pytest.mark.django_db


@pytest.fixture
def unlimited(settings):
    settings.PARLEY_MESSAGE_RATE = (100_000, 10)
    settings.PARLEY_ROOM_CREATE_RATE = (100_000, 60)


def send(room, author, body="hello"):
    return services.message_send(room=room, author=author, body=body).message


def state(user, room) -> UnreadState:
    return unread_states(user_id=user.pk, room_ids=[room.pk])[room.pk]


@pytest.fixture
def room(alice, bob, unlimited):
    room = services.room_create(name="general", creator=alice)
    services.room_join(room=room, user=bob)
    return room


def test_counts_others_messages_above_the_pointer_not_own_nor_deleted(room, alice, bob):
    send(room, alice, "one")
    send(room, bob, "mine")  # bob's own: never unread for bob
    gone = send(room, alice, "deleted soon")
    send(room, alice, "three")
    services.message_delete(room=room, user=alice, message_id=gone.pk)
    # Posting moved each author's pointer to their post: back to the start, to count.
    for user in (alice, bob):
        services.room_mark_read(room=room, user=user, seq=0, force=True)

    s = state(bob, room)
    assert (s.unread, s.mentions) == (2, 0)
    assert s.through == Room.objects.get(pk=room.pk).last_seq
    assert s.kind == "public" and s.role == "member" and s.notify == "mentions"
    assert not s.muted
    assert state(alice, room).unread == 1  # bob's message


def test_only_messages_above_the_pointer_count(room, alice, bob):
    first = send(room, alice, "one")
    send(room, alice, "two")
    services.room_mark_read(room=room, user=bob, seq=first.seq)
    assert state(bob, room).unread == 1
    assert state(bob, room).pointer == first.seq


def test_edits_and_reactions_do_not_make_a_read_message_unread(room, alice, bob):
    message = send(room, alice, "hello")
    services.room_mark_read(room=room, user=bob, seq=message.seq)
    services.message_edit(room=room, user=alice, message_id=message.pk, body="hello again")
    services.reaction_add(room=room, user=alice, message_id=message.pk, emoji="👍")
    s = state(bob, room)
    assert s.through > message.seq  # the changes took seqs...
    assert s.unread == 0  # ...but the message's seq did not move


def test_counts_are_capped(room, alice, bob, settings):
    for i in range(UNREAD_CAP + 5):
        send(room, alice, f"@bob message {i}" if i % 2 else f"message {i}")
    send(room, alice, "@room all of you")
    s = state(bob, room)
    assert s.unread == UNREAD_CAP
    assert s.mentions == (UNREAD_CAP + 5) // 2 + 1  # 53: under the cap
    for i in range(60):
        send(room, alice, f"@room again {i}")
    assert state(bob, room).mentions == UNREAD_CAP


def test_mentions_direct_and_room(room, alice, bob, carol):
    services.room_join(room=room, user=carol)
    send(room, alice, "hi @bob")
    send(room, alice, "hi @carol")
    send(room, alice, "@room lunch?")
    send(room, alice, "@room and @bob")  # one message, counted once
    send(room, bob, "@bob talking to myself @room")  # own: nothing
    gone = send(room, alice, "@bob secret")
    services.message_delete(room=room, user=alice, message_id=gone.pk)
    assert state(bob, room).pointer == 5  # his own post moved it
    services.room_mark_read(room=room, user=bob, seq=0, force=True)
    s = state(bob, room)
    assert (s.unread, s.mentions) == (4, 3)
    assert state(carol, room).mentions == 4  # bob's @room counts for carol


def test_an_edit_that_removes_the_mention_removes_the_mention_count(room, alice, bob):
    message = send(room, alice, "hi @bob")
    assert state(bob, room).mentions == 1
    services.message_edit(room=room, user=alice, message_id=message.pk, body="hi all")
    assert state(bob, room).mentions == 0
    services.message_edit(room=room, user=alice, message_id=message.pk, body="hi @room")
    assert state(bob, room).mentions == 1


def test_only_the_users_memberships(room, alice, bob, carol):
    send(room, alice, "hello")
    assert unread_states(user_id=carol.pk) == {}  # not a member of the public room
    dm, _ = services.dm_get_or_create(user=alice, other=bob)
    send(dm, alice, "psst")
    states = unread_states(user_id=bob.pk)
    assert set(states) == {room.pk, dm.pk}
    assert states[dm.pk].kind == "dm" and states[dm.pk].notify == "all"
    assert unread_states(user_id=bob.pk, room_ids=[dm.pk]).keys() == {dm.pk}


def test_one_statement_whatever_the_number_of_rooms(alice, bob, unlimited):
    for i in range(5):
        room = services.room_create(name=f"room {i}", creator=alice)
        services.room_join(room=room, user=bob)
        send(room, alice, "@bob hi")
    with CaptureQueriesContext(connection) as ctx:
        states = unread_states(user_id=bob.pk)
    assert len(ctx.captured_queries) == 1
    assert [(s.unread, s.mentions) for s in states.values()] == [(1, 1)] * 5


def test_as_dict_has_every_field(room, bob):
    assert set(state(bob, room).as_dict()) == {
        "room_id",
        "kind",
        "role",
        "notify",
        "pointer",
        "unread",
        "mentions",
        "through",
    }


def _rooms(alice, bob, count):
    for i in range(count):
        room = services.room_create(name=f"Room {i:02}", creator=alice)
        services.room_join(room=room, user=bob)
        send(room, alice, "hi @bob")
    group = services.room_create(name="a group", creator=alice, private=True, members=["bob"])
    send(group, alice, "group hi")
    for i in range(count // 3 + 1):
        other = services.room_create(name=f"{i}", creator=alice, private=False)  # bob is not in it
        send(other, alice, "not for bob")


@pytest.mark.parametrize("count", [1, 30])
def test_sidebar_constant_queries(
    alice, bob, make_user, unlimited, django_assert_num_queries, count
):
    _rooms(alice, bob, count)
    for i in range(min(count, 5)):
        person = make_user(f"person{count}x{i}", display_name=f"Person {i}")
        dm, _ = services.dm_get_or_create(user=bob, other=person)
        send(dm, person, "hello bob")
    with django_assert_num_queries(2):
        bar = sidebar(user=bob)
    assert len(bar.rooms) == count + 1
    assert [e.title for e in bar.rooms] == sorted((e.title for e in bar.rooms), key=str.lower)
    assert all(e.unread == 1 for e in bar.rooms)
    group = next(e for e in bar.rooms if e.kind == "private")
    assert group.mentions == 0 and group.role == "member"
    public = next(e for e in bar.rooms if e.kind == "public")
    assert public.mentions == 1 and public.url == f"/chat/room/{public.room_id}/"
    assert [e.title for e in bar.dms] == [f"Person {i}" for i in reversed(range(min(count, 5)))]
    assert all(e.kind == "dm" and e.notify == "all" and e.unread == 1 for e in bar.dms)


@pytest.mark.parametrize("count", [1, 30])
def test_directory_constant_queries(alice, bob, unlimited, django_assert_num_queries, count):
    _rooms(alice, bob, count)
    with django_assert_num_queries(1):
        rooms = selectors.directory(user=bob)
    assert len(rooms) == count + count // 3 + 1  # the public ones only
    joined = [r for r in rooms if r.is_member]
    assert len(joined) == count
    assert all(r.member_count == 2 for r in joined)
    assert all(r.member_count == 1 and r.role is None for r in rooms if not r.is_member)


def test_muted_room(room, alice, bob):
    services.membership_set_notify(room=room, user=bob, notify=Membership.Notify.NONE)
    send(room, alice, "@bob hi")
    s = state(bob, room)
    assert s.muted and (s.unread, s.mentions) == (1, 1)
    entry = sidebar(user=bob).rooms[0]
    assert entry.muted and entry.state["muted"] and entry.state["unread"] == 1


def test_room_lists_load_only_the_members_of_direct_conversations(alice, bob, carol, room):
    """A room list titles a DM by the other person (its two members, prefetched); a private
    group is titled by its name, so its members, possibly hundreds, are not loaded."""
    group = services.room_create(name="team", creator=alice, private=True, members=["bob", "carol"])
    dm, _ = services.dm_get_or_create(user=alice, other=bob)
    rooms = {r.pk: r for r in selectors.with_dm_members(selectors.room_list_for_user(user=alice))}
    assert {m.user_id for m in rooms[dm.pk].member_list} == {alice.pk, bob.pk}
    assert rooms[group.pk].member_list == [] and rooms[room.pk].member_list == []
    titles = {pk: selectors.room_title_for(room=r, user=alice) for pk, r in rooms.items()}
    assert titles == {dm.pk: "Bob", group.pk: "team", room.pk: "general"}
