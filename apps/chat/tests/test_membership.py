"""Membership services: who may create, change, join, leave and manage rooms, what each refuses
(RoomNotFound for a room one may not see, NotAllowed for one one may see but not change,
ValidationError for bad input) and which events each publishes after commit."""

from contextlib import contextmanager

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.chat import realtime, selectors, services
from apps.chat.errors import MemberNotFound, NotAllowed, RoomNotFound
from apps.chat.models import Membership, Mention, Message, Reaction, Room

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.PARLEY_MESSAGE_RATE = (100_000, 10)
    settings.PARLEY_ROOM_CREATE_RATE = (100_000, 60)
    settings.PARLEY_ROOM_ADMIN_RATE = (100_000, 60)


@pytest.fixture
def events(monkeypatch, django_capture_on_commit_callbacks):
    """``with events() as published:`` runs the block, then its on-commit callbacks, and
    collects what they publish as (group, event) pairs. Nothing is published before commit:
    publish is only reached from the callbacks."""
    published: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        realtime, "publish", lambda group, event, *, lost: published.append((group, event))
    )

    @contextmanager
    def capture():
        published.clear()
        with django_capture_on_commit_callbacks(execute=True):
            yield published

    return capture


def types(published) -> list[str]:
    return [event["type"] for _group, event in published]


def of_type(published, kind) -> list[dict]:
    return [event for _group, event in published if event["type"] == kind]


@pytest.fixture
def dave(make_user):
    return make_user("dave", display_name="Dave")


@pytest.fixture
def group(alice, bob):
    """A private group: alice owns it, bob is a member (carol and dave are outsiders)."""
    return services.room_create(name="secret", creator=alice, private=True, members=["bob"])


@pytest.fixture
def public(alice, bob):
    room = services.room_create(name="general", creator=alice)
    services.room_join(room=room, user=bob)
    return room


@pytest.fixture
def dm(alice, bob):
    return services.dm_get_or_create(user=alice, other=bob)[0]


def role(room, user):
    return Membership.objects.filter(room=room, user=user).values_list("role", flat=True).first()


# --- room_create -----------------------------------------------------------------------------


def test_creating_a_private_group_adds_the_chosen_members(alice, bob, carol, events):
    with events() as published:
        room = services.room_create(
            name="Team", creator=alice, private=True, members=["BOB", "carol", "alice"]
        )
    assert room.kind == "private" and room.is_private and room.dm_key is None
    assert role(room, alice) == "owner"
    assert role(room, bob) == role(room, carol) == "member"
    assert set(Membership.objects.filter(room=room).values_list("notify", flat=True)) == {
        "mentions"
    }
    assert types(published) == ["user.rooms"]
    assert of_type(published, "user.rooms")[0]["users"] == sorted([alice.pk, bob.pk, carol.pk])


def test_private_group_names_need_not_be_unique_but_public_ones_must(alice, bob):
    services.room_create(name="General", creator=alice)
    services.room_create(name="general", creator=alice, private=True, members=["bob"])
    services.room_create(name="general", creator=bob, private=True)
    with pytest.raises(ValidationError):
        services.room_create(name="GENERAL", creator=bob)


def test_creating_a_public_room_announces_it_in_the_directory(alice, events):
    with events() as published:
        room = services.room_create(name="open", creator=alice, topic="  all welcome ")
    assert room.kind == "public" and room.topic == "all welcome"
    assert types(published) == ["user.rooms", "directory.changed"]


def test_unknown_or_inactive_members_are_refused_by_name(alice, make_user, events):
    make_user("sleeper", is_active=False)
    with events() as published, pytest.raises(ValidationError) as exc:
        services.room_create(name="t", creator=alice, private=True, members=["ghost", "sleeper"])
    assert exc.value.code == "members"
    assert "ghost" in exc.value.messages[0] and "sleeper" in exc.value.messages[0]
    assert Room.objects.count() == 0 and published == []


@pytest.mark.parametrize("name", ["\x00", "bo\x00b", "bob\x00", "b\tob", "bo\x7fb", "bo\ud800b"])
def test_a_member_name_with_control_characters_is_refused_before_any_query(
    alice, bob, name, django_assert_num_queries
):
    """NUL in a query is a database error on PostgreSQL (a 500): such a name is refused as
    no username, by the field, without asking the database."""
    with django_assert_num_queries(0), pytest.raises(ValidationError) as exc:
        services.room_create(name="t", creator=alice, private=True, members=["bob", name])
    assert exc.value.code == "members" and "control characters" in exc.value.messages[0]
    group = services.room_create(name="t", creator=alice, private=True, members=["bob"])
    with pytest.raises(ValidationError) as exc:
        services.member_add(room=group, user=alice, username=name)
    assert exc.value.code == "username" and "control characters" in exc.value.messages[0]
    assert Membership.objects.filter(room=group).count() == 2


def test_a_member_search_with_control_characters_matches_nobody(group, django_assert_num_queries):
    for query in ("\x00", "b\x00", "bo\nb", "\ud800"):
        with django_assert_num_queries(0):
            assert selectors.room_members(room=group, query=query) == []
    assert [m.user.username for m in selectors.room_members(room=group, query="bo")] == ["bob"]


@pytest.mark.parametrize("members", ["bob", [1], [""], None, {"bob": 1}])
def test_members_must_be_a_list_of_usernames(alice, bob, members):
    if members is None:  # None means none
        assert services.room_create(name="t", creator=alice, private=True, members=None)
        return
    with pytest.raises(ValidationError) as exc:
        services.room_create(name="t", creator=alice, private=True, members=members)
    assert exc.value.code == "members"


def test_members_are_only_for_private_groups(alice, bob):
    with pytest.raises(ValidationError) as exc:
        services.room_create(name="t", creator=alice, members=["bob"])
    assert exc.value.code == "members"


def test_private_must_be_a_bool(alice):
    with pytest.raises(ValidationError) as exc:
        services.room_create(name="t", creator=alice, private="yes")
    assert exc.value.code == "private"


# --- dm_get_or_create ------------------------------------------------------------------------


def test_a_new_dm_notifies_both_and_defaults_to_all(alice, bob, events):
    with events() as published:
        room, created = services.dm_get_or_create(user=alice, other=bob)
    assert created and room.kind == "dm"
    assert of_type(published, "user.rooms") == [
        {"type": "user.rooms", "users": sorted([alice.pk, bob.pk])}
    ]
    assert set(Membership.objects.filter(room=room).values_list("notify", flat=True)) == {"all"}
    with events() as published:
        assert services.dm_get_or_create(user=bob, other=alice) == (room, False)
    assert published == []


# --- room_update -----------------------------------------------------------------------------


def test_the_owner_renames_and_sets_the_topic(public, alice, events):
    with events() as published:
        room = services.room_update(room=public, user=alice, name="lobby", topic="Say hi")
    assert (room.name, room.topic) == ("lobby", "Say hi")
    assert Room.objects.filter(pk=public.pk, name="lobby", topic="Say hi").exists()
    assert types(published) == ["room.updated", "directory.changed"]
    group_name, event = published[0]
    assert group_name == realtime.room_group(public.pk)
    assert event == {"type": "room.updated", "room": public.pk, "name": "lobby", "topic": "Say hi"}


def test_a_topic_change_alone_does_not_touch_the_directory(public, alice, events):
    with events() as published:
        services.room_update(room=public, user=alice, topic="new topic")
    assert types(published) == ["room.updated"]


def test_a_private_group_rename_is_not_in_the_directory(group, alice, events):
    with events() as published:
        services.room_update(room=group, user=alice, name="hush")
    assert types(published) == ["room.updated"]


def test_nothing_changed_publishes_nothing(public, alice, events):
    with events() as published:
        services.room_update(room=public, user=alice, name="general", topic="")
    assert published == []


def test_room_mentions_policy(public, alice):
    services.room_update(room=public, user=alice, room_mentions="owners")
    assert Room.objects.get(pk=public.pk).room_mentions == "owners"
    with pytest.raises(ValidationError) as exc:
        services.room_update(room=public, user=alice, room_mentions="everyone")
    assert exc.value.code == "room_mentions"


def test_a_rename_onto_another_public_rooms_name_is_refused(public, alice):
    services.room_create(name="other", creator=alice)
    with pytest.raises(ValidationError) as exc:
        services.room_update(room=public, user=alice, name="OTHER")
    assert exc.value.code == "unique"


@pytest.mark.parametrize("topic", ["x" * 251, "bad\x00", 5])
def test_bad_topics_are_refused(public, alice, topic):
    with pytest.raises(ValidationError):
        services.room_update(room=public, user=alice, topic=topic)


def test_room_updates_are_rate_limited(public, alice, settings):
    settings.PARLEY_ROOM_ADMIN_RATE = (2, 60)
    services.room_update(room=public, user=alice, topic="1")
    services.room_update(room=public, user=alice, topic="2")
    with pytest.raises(services.RateLimited):
        services.room_update(room=public, user=alice, topic="3")


@pytest.mark.parametrize(
    "who, error",
    [
        ("bob", NotAllowed),  # a member
        ("carol", NotAllowed),  # signed in, not a member (public) / outsider (private)
        ("anonymous", RoomNotFound),
    ],
)
def test_only_owners_update_a_public_room(public, who, error, request, events):
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with events() as published, pytest.raises(error):
        services.room_update(room=public, user=user, name="mine now")
    assert Room.objects.get(pk=public.pk).name == "general" and published == []


@pytest.mark.parametrize(
    "who, error", [("bob", NotAllowed), ("carol", RoomNotFound), ("anonymous", RoomNotFound)]
)
def test_only_owners_update_a_private_group(group, who, error, request):
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with pytest.raises(error):
        services.room_update(room=group, user=user, topic="mine now")


def test_nobody_manages_a_dm(dm, alice, carol):
    with pytest.raises(NotAllowed):
        services.room_update(room=dm, user=alice, name="us")
    with pytest.raises(RoomNotFound):
        services.room_update(room=dm, user=carol, name="us")


# --- room_delete -----------------------------------------------------------------------------


def test_the_owner_deletes_a_room_and_every_member_hears_of_it(public, alice, bob, events):
    services.message_send(room=public, author=bob, body="hello")
    with events() as published:
        services.room_delete(room=public, user=alice)
    assert not Room.objects.filter(pk=public.pk).exists()
    assert types(published) == ["room.access", "user.rooms", "directory.changed"]
    assert published[0] == (
        realtime.room_group(public.pk),
        {"type": "room.access", "room": public.pk, "users": None},
    )
    assert published[1][1]["users"] == sorted([alice.pk, bob.pk])


def _fill(room, author, count):
    """``count`` messages more (rows made directly: fast), every third replying to the one
    before it, each mentioning and reacted to by ``author``."""
    start = room.last_seq
    Message.objects.bulk_create(
        Message(room=room, author=author, seq=seq, version=seq, body=f"m{seq}")
        for seq in range(start + 1, start + count + 1)
    )
    Room.objects.filter(pk=room.pk).update(last_seq=start + count)
    room.last_seq = start + count
    messages = list(Message.objects.filter(room=room, seq__gt=start).order_by("seq"))
    for before, message in zip(messages, messages[1:], strict=False):
        if message.seq % 3 == 0:
            message.reply_to = before
    Message.objects.bulk_update(messages, ["reply_to"])
    Mention.objects.bulk_create(
        Mention(message=m, user=author, room=room, seq=m.seq) for m in messages
    )
    Reaction.objects.bulk_create(Reaction(message=m, user=author, emoji="👍") for m in messages)


def _everything_of(room) -> dict:
    return {
        "room": Room.objects.filter(pk=room.pk).count(),
        "memberships": Membership.objects.filter(room=room).count(),
        "messages": Message.objects.filter(room=room).count(),
        "mentions": Mention.objects.filter(room=room).count(),
        "reactions": Reaction.objects.filter(message__room=room).count(),
    }


def test_deleting_a_room_costs_the_same_statements_however_many_messages(alice, bob):
    """The collector read every message and deleted a batch of 500 at a time; now a constant
    number of statements deletes the room, its messages, reactions, mentions and
    memberships, and nothing of any other room."""
    other = services.room_create(name="other", creator=alice)
    services.room_join(room=other, user=bob)
    _fill(other, bob, 5)
    kept = _everything_of(other)
    counts = []
    for name, size in (("small", 3), ("big", 1200)):
        room = services.room_create(name=name, creator=alice)
        services.room_join(room=room, user=bob)
        _fill(room, bob, size)
        assert _everything_of(room) == {
            "room": 1, "memberships": 2, "messages": size, "mentions": size, "reactions": size
        }  # fmt: skip
        with CaptureQueriesContext(connection) as ctx:
            services.room_delete(room=room, user=alice)
        counts.append(len(ctx.captured_queries))
        assert set(_everything_of(room).values()) == {0}
    # savepoints and the access check included; 2 for the attachments (their files to delete),
    # 1 for the room's webhooks (the collector's fast DELETE by room)
    assert counts[0] == counts[1] <= 17, counts
    assert _everything_of(other) == kept


def test_the_last_member_leaving_a_big_group_deletes_all_of_it(alice):
    group = services.room_create(name="solo", creator=alice, private=True)
    _fill(group, alice, 600)
    assert services.room_leave(room=group, user=alice) is True
    assert set(_everything_of(group).values()) == {0}


def test_deleting_a_private_group_is_not_in_the_directory(group, alice, events):
    with events() as published:
        services.room_delete(room=group, user=alice)
    assert types(published) == ["room.access", "user.rooms"]


@pytest.mark.parametrize(
    "room_name, who, error",
    [
        ("public", "bob", NotAllowed),
        ("public", "carol", NotAllowed),
        ("public", "anonymous", RoomNotFound),
        ("group", "bob", NotAllowed),
        ("group", "carol", RoomNotFound),
        ("dm", "alice", NotAllowed),
        ("dm", "carol", RoomNotFound),
    ],
)
def test_only_owners_delete(room_name, who, error, request, events):
    room = request.getfixturevalue(room_name)
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with events() as published, pytest.raises(error):
        services.room_delete(room=room, user=user)
    assert Room.objects.filter(pk=room.pk).exists() and published == []


# --- room_join -------------------------------------------------------------------------------


def test_joining_a_public_room(public, alice, carol, events):
    services.message_send(room=public, author=alice, body="before carol")
    with events() as published:
        membership, created = services.room_join(room=public, user=carol)
    assert created
    assert (membership.role, membership.notify) == ("member", "mentions")
    # What was there before joining is not unread.
    assert membership.last_read_seq == Room.objects.get(pk=public.pk).last_seq
    assert of_type(published, "user.rooms") == [{"type": "user.rooms", "users": [carol.pk]}]
    with events() as published:
        assert services.room_join(room=public, user=carol) == (membership, False)
    assert published == []


def test_joining_a_room_one_is_in_changes_nothing(group, dm, bob):
    assert services.room_join(room=group, user=bob)[1] is False
    assert services.room_join(room=dm, user=bob)[1] is False


@pytest.mark.parametrize("room_name", ["group", "dm"])
def test_outsiders_cannot_join_private_rooms(room_name, carol, request):
    room = request.getfixturevalue(room_name)
    with pytest.raises(RoomNotFound):
        services.room_join(room=room, user=carol)
    with pytest.raises(RoomNotFound):
        services.room_join(room=room, user=AnonymousUser())
    assert role(room, carol) is None


# --- room_leave ------------------------------------------------------------------------------


def test_a_member_leaves_a_public_room(public, bob, events):
    with events() as published:
        assert services.room_leave(room=public, user=bob) is True
    assert role(public, bob) is None
    assert types(published) == ["user.rooms"]
    assert services.room_leave(room=public, user=bob) is False


def test_leaving_a_private_group_closes_ones_sockets_of_it(group, bob, events):
    with events() as published:
        assert services.room_leave(room=group, user=bob)
    assert types(published) == ["room.access", "user.rooms"]
    assert published[0][1] == {"type": "room.access", "room": group.pk, "users": [bob.pk]}
    assert published[1][1]["users"] == [bob.pk]


def test_the_last_owner_leaving_promotes_the_oldest_member(group, alice, bob, carol, events):
    services.member_add(room=group, user=alice, username="carol")
    with events() as published:
        services.room_leave(room=group, user=alice)
    assert role(group, bob) == "owner" and role(group, carol) == "member"
    assert of_type(published, "user.rooms")[0]["users"] == sorted([alice.pk, bob.pk])


def test_an_owner_leaving_while_another_stays_promotes_nobody(public, alice, bob, carol):
    services.room_join(room=public, user=carol)
    Membership.objects.filter(room=public, user=carol).update(role="owner")
    services.room_leave(room=public, user=alice)
    assert role(public, bob) == "member" and role(public, carol) == "owner"


def test_the_last_member_leaving_deletes_the_group(alice, events):
    room = services.room_create(name="solo", creator=alice, private=True)
    with events() as published:
        assert services.room_leave(room=room, user=alice)
    assert not Room.objects.filter(pk=room.pk).exists()
    assert types(published) == ["room.access", "user.rooms"]


def test_the_last_member_leaving_a_public_room_leaves_the_room(alice):
    room = services.room_create(name="quiet", creator=alice)
    services.room_leave(room=room, user=alice)
    assert Room.objects.filter(pk=room.pk).exists()


def test_a_dm_cannot_be_left(dm, alice, carol):
    with pytest.raises(NotAllowed):
        services.room_leave(room=dm, user=alice)
    with pytest.raises(RoomNotFound):
        services.room_leave(room=dm, user=carol)
    assert role(dm, alice) == "owner"


def test_outsiders_and_anonymous_cannot_leave_what_they_cannot_see(group, carol):
    with pytest.raises(RoomNotFound):
        services.room_leave(room=group, user=carol)
    with pytest.raises(RoomNotFound):
        services.room_leave(room=group, user=AnonymousUser())


def test_a_non_member_leaving_a_public_room_is_a_no_op(public, carol, events):
    with events() as published:
        assert services.room_leave(room=public, user=carol) is False
    assert published == []


# --- member_add / member_remove ------------------------------------------------------------


def test_the_owner_adds_a_member(group, alice, carol, events):
    with events() as published:
        membership, created = services.member_add(room=group, user=alice, username=" Carol ")
    assert created
    assert (membership.user_id, membership.role, membership.notify) == (
        carol.pk,
        "member",
        "mentions",
    )
    assert of_type(published, "user.rooms") == [{"type": "user.rooms", "users": [carol.pk]}]
    with events() as published:
        again, created = services.member_add(room=group, user=alice, username="carol")
    assert (again.pk, created) == (membership.pk, False)
    assert published == []


@pytest.mark.parametrize("username", ["ghost", "sleeper", "", None, 7])
def test_adding_an_unknown_or_inactive_user_is_refused(group, alice, make_user, username):
    make_user("sleeper", is_active=False)
    with pytest.raises(ValidationError) as exc:
        services.member_add(room=group, user=alice, username=username)
    assert exc.value.code == "username"


@pytest.mark.parametrize(
    "room_name, who, error",
    [
        ("group", "bob", NotAllowed),
        ("group", "dave", RoomNotFound),
        ("group", "anonymous", RoomNotFound),
        ("public", "alice", NotAllowed),  # anyone can join a public room
        ("public", "bob", NotAllowed),
        ("dm", "alice", NotAllowed),
        ("dm", "dave", RoomNotFound),
    ],
)
def test_only_owners_add_members_and_only_to_private_groups(
    room_name, who, error, request, carol, events
):
    room = request.getfixturevalue(room_name)
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with events() as published, pytest.raises(error):
        services.member_add(room=room, user=user, username="carol")
    assert role(room, carol) is None and published == []


def test_member_adds_are_rate_limited(group, alice, make_user, settings):
    settings.PARLEY_ROOM_ADMIN_RATE = (1, 60)
    make_user("x1")
    make_user("x2")
    services.member_add(room=group, user=alice, username="x1")
    with pytest.raises(services.RateLimited):
        services.member_add(room=group, user=alice, username="x2")


def test_the_owner_removes_a_member(group, alice, bob, events):
    with events() as published:
        services.member_remove(room=group, user=alice, member_id=str(bob.pk))
    assert role(group, bob) is None
    assert types(published) == ["room.access", "user.rooms"]
    assert published[0][1]["users"] == [bob.pk] and published[1][1]["users"] == [bob.pk]


def test_removing_oneself_or_a_non_member_is_refused(group, alice, carol):
    with pytest.raises(ValidationError) as exc:
        services.member_remove(room=group, user=alice, member_id=alice.pk)
    assert exc.value.code == "member_id" and "leave" in exc.value.messages[0]
    for member_id in (carol.pk, 10**9, "x", -1, True, None):
        with pytest.raises(ValidationError) as exc:
            services.member_remove(room=group, user=alice, member_id=member_id)
        assert exc.value.code == "member_id"
        # Not a member (the API's 404) told apart from a malformed id (400).
        assert isinstance(exc.value, MemberNotFound) == (member_id in (carol.pk, 10**9))


@pytest.mark.parametrize(
    "room_name, who, error",
    [
        ("group", "bob", NotAllowed),
        ("group", "carol", RoomNotFound),
        ("group", "anonymous", RoomNotFound),
        ("public", "alice", NotAllowed),
        ("dm", "alice", NotAllowed),
    ],
)
def test_only_owners_remove_members_of_private_groups(room_name, who, error, request, bob, alice):
    room = request.getfixturevalue(room_name)
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    target = alice if who == "bob" else bob
    with pytest.raises(error):
        services.member_remove(room=room, user=user, member_id=target.pk)
    assert role(room, target) is not None


@pytest.fixture
def meanwhile(monkeypatch):
    """``meanwhile(change)``: ``change()`` commits right after the service's access check
    (another request of another owner, as it interleaves with this one)."""
    from apps.chat import selectors

    def install(change):
        original = selectors.room_access

        def then_change(*, room, user, **kwargs):
            access = original(room=room, user=user, **kwargs)
            change()
            return access

        monkeypatch.setattr(selectors, "room_access", then_change)

    return install


def test_two_owners_removing_each_other_leave_one_owner(group, alice, bob, meanwhile):
    """Alice and Bob own the group; each removes the other at once. Whoever gets the room's
    lock second is no longer a member when the lock is granted: refused, so the group keeps
    an owner (the ownership is decided again under the lock, not by the earlier check)."""
    Membership.objects.filter(room=group, user=bob).update(role=Membership.Role.OWNER)
    # Bob's removal of Alice commits between Alice's access check and her lock.
    meanwhile(lambda: Membership.objects.filter(room=group, user=alice).delete())
    with pytest.raises(RoomNotFound):  # the private group is gone for her
        services.member_remove(room=group, user=alice, member_id=bob.pk)
    assert role(group, bob) == Membership.Role.OWNER
    assert Membership.objects.filter(room=group, role=Membership.Role.OWNER).exists()


def test_an_owner_demoted_meanwhile_may_not_remove(group, alice, bob, dave, meanwhile):
    services.member_add(room=group, user=alice, username="dave")
    meanwhile(
        lambda: Membership.objects.filter(room=group, user=alice).update(
            role=Membership.Role.MEMBER
        )
    )
    with pytest.raises(NotAllowed):
        services.member_remove(room=group, user=alice, member_id=dave.pk)
    assert role(group, dave) == Membership.Role.MEMBER


def test_an_owner_removed_meanwhile_may_not_add(group, alice, carol, meanwhile):
    meanwhile(lambda: Membership.objects.filter(room=group, user=alice).delete())
    with pytest.raises(RoomNotFound):
        services.member_add(room=group, user=alice, username="carol")
    assert role(group, carol) is None


def test_a_removal_committed_before_a_leave_still_promotes_someone(
    group, alice, bob, dave, meanwhile
):
    """Alice (owner) leaves while a removal of Bob commits: her leave, under the lock, sees
    Bob gone and promotes Dave, the oldest remaining member, not the removed Bob."""
    services.member_add(room=group, user=alice, username="dave")
    meanwhile(lambda: Membership.objects.filter(room=group, user=bob).delete())
    assert services.room_leave(room=group, user=alice) is True
    assert role(group, bob) is None
    assert role(group, dave) == Membership.Role.OWNER


# --- room_mark_read --------------------------------------------------------------------------


def _messages(room, author, count):
    return [
        services.message_send(room=room, author=author, body=f"m{i}").message for i in range(count)
    ]


def test_mark_read_moves_forward_only(public, alice, bob, events):
    first, second, third = _messages(public, alice, 3)
    with events() as published:
        state = services.room_mark_read(room=public, user=bob, seq=second.seq)
    assert (state.pointer, state.unread) == (second.seq, 1)
    assert published == [
        (
            realtime.USERS_GROUP,
            {"type": "user.read", "user": bob.pk, "room": public.pk, "state": state.as_dict()},
        ),
        # A room of at most 10 members: its read receipts, for its viewers (issue 11).
        (
            realtime.room_group(public.pk),
            {
                "type": "room.read",
                "room": public.pk,
                "reads": [],
                "receipts": [[alice.pk, third.seq], [bob.pk, second.seq]],
            },
        ),
    ]
    with events() as published:
        state = services.room_mark_read(room=public, user=bob, seq=first.seq)
    assert (state.pointer, state.unread) == (second.seq, 1) and published == []


def test_mark_read_with_force_moves_back(public, alice, bob, events):
    first, _second, third = _messages(public, alice, 3)
    services.room_mark_read(room=public, user=bob, seq=third.seq)
    with events() as published:
        state = services.room_mark_read(room=public, user=bob, seq=first.seq - 1, force=True)
    assert (state.pointer, state.unread) == (first.seq - 1, 3)
    assert types(published) == ["user.read", "room.read"]  # (the room's read receipts)
    with events() as published:  # the same place again: nothing moved
        services.room_mark_read(room=public, user=bob, seq=first.seq - 1, force=True)
    assert published == []


def test_mark_read_is_clamped_to_the_rooms_last_seq(public, alice, bob):
    _messages(public, alice, 2)
    last = Room.objects.get(pk=public.pk).last_seq
    state = services.room_mark_read(room=public, user=bob, seq=str(last + 1000))
    assert state.pointer == last == state.through and state.unread == 0


@pytest.mark.parametrize("seq", [-1, "1.5", "x", None, True, 2**63])
def test_mark_read_refuses_a_bad_seq(public, bob, seq):
    with pytest.raises(ValidationError):
        services.room_mark_read(room=public, user=bob, seq=seq)


def test_mark_read_refuses_a_bad_force(public, bob):
    with pytest.raises(ValidationError):
        services.room_mark_read(room=public, user=bob, seq=1, force="yes")


def test_mark_read_costs_two_queries(public, alice, bob, django_assert_num_queries):
    _messages(public, alice, 3)
    with django_assert_num_queries(2):  # the UPDATE, then the new state
        services.room_mark_read(room=public, user=bob, seq=2)


def _state_reads(queries) -> int:
    return sum("_capped" in q["sql"] for q in queries)


@pytest.mark.parametrize("seq", [2, 1])  # moves (user.read emitted) / does not move
def test_mark_read_reads_the_state_once_itself(
    public, alice, bob, seq, django_capture_on_commit_callbacks
):
    """One read of the unread state by room_mark_read itself; when the pointer moved, the
    user.read event's on-commit callback (realtime) makes the only other one (the other
    callback reads the room's read receipts, not the unread state)."""
    _messages(public, alice, 3)
    services.room_mark_read(room=public, user=bob, seq=1)
    with (
        CaptureQueriesContext(connection) as own,
        django_capture_on_commit_callbacks(execute=False) as callbacks,
    ):
        state = services.room_mark_read(room=public, user=bob, seq=seq)
    assert _state_reads(own) == 1 and state.pointer == seq
    assert len(callbacks) == (2 if seq == 2 else 0)  # user.read, the receipts


def test_mark_read_is_rate_limited_per_user(public, alice, bob, carol, settings, frozen_clock):
    settings.PARLEY_READ_RATE = (3, 10)
    services.room_join(room=public, user=carol)
    _messages(public, alice, 5)
    for seq in (1, 2, 2):  # every call counts, moved or not
        services.room_mark_read(room=public, user=bob, seq=seq)
    with pytest.raises(services.RateLimited) as exc:
        services.room_mark_read(room=public, user=bob, seq=3)
    assert exc.value.retry_after > 0 and "too fast" in exc.value.message
    assert Membership.objects.get(room=public, user=bob).last_read_seq == 2
    services.room_mark_read(room=public, user=carol, seq=3)  # another user's own budget


def test_mark_read_default_rate_is_loose(public, alice, bob, settings, frozen_clock):
    _messages(public, alice, 1)
    assert settings.PARLEY_READ_RATE == (120, 10)
    for _ in range(120):
        services.room_mark_read(room=public, user=bob, seq=1)
    with pytest.raises(services.RateLimited):
        services.room_mark_read(room=public, user=bob, seq=1)


@pytest.mark.parametrize(
    "room_name, who, error",
    [
        ("public", "carol", NotAllowed),  # may read it, has no pointer there
        ("public", "anonymous", RoomNotFound),
        ("group", "carol", RoomNotFound),
        ("dm", "carol", RoomNotFound),
    ],
)
def test_mark_read_needs_a_membership(room_name, who, error, request, events):
    room = request.getfixturevalue(room_name)
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with events() as published, pytest.raises(error):
        services.room_mark_read(room=room, user=user, seq=0)
    assert published == []


def test_mark_read_works_in_a_dm_and_a_group(dm, group, alice, bob):
    services.message_send(room=dm, author=alice, body="hi")
    services.message_send(room=group, author=alice, body="hi")
    assert services.room_mark_read(room=dm, user=bob, seq=1).unread == 0
    assert services.room_mark_read(room=group, user=bob, seq=1).unread == 0


# --- membership_set_notify -------------------------------------------------------------------


def test_set_notify(public, bob, events):
    with events() as published:
        membership = services.membership_set_notify(room=public, user=bob, notify="none")
    assert membership.notify == "none"
    assert Membership.objects.get(room=public, user=bob).notify == "none"
    assert of_type(published, "user.rooms") == [{"type": "user.rooms", "users": [bob.pk]}]
    with events() as published:
        services.membership_set_notify(room=public, user=bob, notify="none")
    assert published == []


@pytest.mark.parametrize("notify", ["loud", "", None, 1])
def test_set_notify_refuses_other_values(public, bob, notify):
    with pytest.raises(ValidationError) as exc:
        services.membership_set_notify(room=public, user=bob, notify=notify)
    assert exc.value.code == "notify"


@pytest.mark.parametrize(
    "room_name, who, error",
    [
        ("public", "carol", NotAllowed),
        ("public", "anonymous", RoomNotFound),
        ("group", "carol", RoomNotFound),
    ],
)
def test_set_notify_needs_a_membership(room_name, who, error, request):
    room = request.getfixturevalue(room_name)
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with pytest.raises(error):
        services.membership_set_notify(room=room, user=user, notify="all")


# --- posting joins a public room -------------------------------------------------------------


def test_posting_in_a_public_room_joins_it(public, alice, carol, events):
    with events() as published:
        message = services.message_send(room=public, author=carol, body="hi all").message
    membership = Membership.objects.get(room=public, user=carol)
    assert (membership.role, membership.notify) == ("member", "mentions")
    assert membership.last_read_seq == message.seq
    assert types(published) == ["user.rooms", "room.change"]
    assert of_type(published, "user.rooms")[0]["users"] == [carol.pk]


def test_posting_as_a_member_publishes_only_the_message(public, bob, events):
    with events() as published:
        services.message_send(room=public, author=bob, body="hi all")
    assert types(published) == ["room.change"]


def test_posting_costs_one_membership_write(public, bob, carol, django_assert_num_queries):
    """The access query already says whether the author is a member: a member's post (no
    mention) costs one UPDATE of their own read pointer more than the message itself; a
    non-member's first post, one INSERT of the membership (its pointer already at the post)
    instead."""
    services.message_send(room=public, author=bob, body="warm up")
    with django_assert_num_queries(7) as member:  # savepoints included
        services.message_send(room=public, author=bob, body="plain")
    with django_assert_num_queries(7) as joining:
        services.message_send(room=public, author=carol, body="first")

    def membership_writes(queries):
        return [
            q["sql"].split()[0]
            for q in queries
            if q["sql"].startswith(("UPDATE", "INSERT")) and "chat_membership" in q["sql"]
        ]

    assert membership_writes(member) == ["UPDATE"]
    assert membership_writes(joining) == ["INSERT"]


def test_ones_own_post_moves_ones_read_pointer_to_it(public, alice, bob, carol, events):
    """Posting marks what came before it read (Slack, Zulip): the author's pointer is the new
    message's seq; nobody else's moves; no user.read event (the sockets apply it)."""
    services.room_join(room=public, user=carol)
    services.message_send(room=public, author=alice, body="one")
    services.message_send(room=public, author=carol, body="two")
    with events() as published:
        mine = services.message_send(room=public, author=bob, body="three").message
    assert types(published) == ["room.change"]
    pointers = dict(
        Membership.objects.filter(room=public).values_list("user__username", "last_read_seq")
    )
    assert pointers == {"alice": 1, "bob": mine.seq, "carol": 2}
    state = selectors.unread_states(user_id=bob.pk)[public.pk]
    assert (state.pointer, state.unread) == (mine.seq, 0)


def test_outsiders_cannot_post_in_private_rooms(group, dm, carol):
    for room in (group, dm):
        with pytest.raises(RoomNotFound):
            services.message_send(room=room, author=carol, body="let me in")
        assert role(room, carol) is None
