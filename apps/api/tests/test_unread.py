"""Your read state in room objects and ``read/``: the numbers move as others write, as you read,
when you mark a room unread again; your own and deleted messages never count; the room list
costs the same queries whatever the number of rooms."""

import pytest

from apps.api.testing import error_of
from apps.chat import services
from apps.chat.models import Membership


def _room(client, room):
    return client.get(f"/api/rooms/{room.pk}/").json()


def _numbers(client, room):
    body = _room(client, room)
    return body["last_read_seq"], body["unread_count"], body["mention_count"]


def _read(client, room, seq, **extra):
    return client.post(f"/api/rooms/{room.pk}/read/", {"seq": seq, **extra}, format="json")


@pytest.fixture
def bob_sends(public_with_bob, bob, unlimited):
    def send(body="hello", room=None):
        return services.message_send(room=room or public_with_bob, author=bob, body=body).message

    return send


def test_a_non_member_has_no_read_state(as_carol, public_room, alice, send):
    send(public_room, alice, "hi @carol")

    body = _room(as_carol, public_room)

    assert body["is_member"] is False
    assert (body["role"], body["notify"], body["last_read_seq"]) == (None, None, None)
    assert (body["unread_count"], body["mention_count"]) == (0, 0)


def test_messages_from_others_are_unread_until_read(as_alice, public_with_bob, bob_sends):
    assert _numbers(as_alice, public_with_bob) == (0, 0, 0)

    for n in range(3):
        bob_sends(f"m{n}")

    assert _numbers(as_alice, public_with_bob) == (0, 3, 0)

    response = _read(as_alice, public_with_bob, 2)

    assert response.status_code == 200
    assert response.json() == {
        "room": public_with_bob.pk,
        "last_read_seq": 2,
        "unread_count": 1,
        "mention_count": 0,
    }
    assert _numbers(as_alice, public_with_bob) == (2, 1, 0)
    assert Membership.objects.get(room=public_with_bob, user__username="alice").last_read_seq == 2


def test_your_own_messages_never_count(as_alice, as_bob, public_with_bob, alice, send, bob_sends):
    bob_sends("theirs")
    send(public_with_bob, alice, "mine")
    send(public_with_bob, alice, "mine too")

    assert _numbers(as_alice, public_with_bob) == (3, 0, 0)  # posting moved her pointer
    assert _numbers(as_bob, public_with_bob)[1] == 2
    # Marked unread from the start: only Bob's message counts, not her own two.
    _read(as_alice, public_with_bob, 0, force=True)
    assert _numbers(as_alice, public_with_bob) == (0, 1, 0)


def test_deleted_messages_never_count(as_alice, public_with_bob, bob, bob_sends):
    keep, gone = bob_sends("keep"), bob_sends("gone @alice")
    assert _numbers(as_alice, public_with_bob)[1:] == (2, 1)

    services.message_delete(room=public_with_bob, user=bob, message_id=gone.pk)

    assert _numbers(as_alice, public_with_bob)[1:] == (1, 0)
    assert keep.pk


def test_edits_and_reactions_do_not_make_a_read_message_unread_again(
    as_alice, public_with_bob, alice, bob, bob_sends
):
    message = bob_sends("typo")
    _read(as_alice, public_with_bob, public_with_bob.last_seq)

    services.message_edit(room=public_with_bob, user=bob, message_id=message.pk, body="fixed")
    services.reaction_add(room=public_with_bob, user=bob, message_id=message.pk, emoji="👍")

    assert _numbers(as_alice, public_with_bob)[1] == 0


def test_reading_never_moves_the_pointer_back_unless_forced(as_alice, public_with_bob, bob_sends):
    for n in range(4):
        bob_sends(f"m{n}")
    _read(as_alice, public_with_bob, 4)

    stale = _read(as_alice, public_with_bob, 1)

    assert stale.status_code == 200
    assert stale.json()["last_read_seq"] == 4
    assert _numbers(as_alice, public_with_bob) == (4, 0, 0)

    forced = _read(as_alice, public_with_bob, 1, force=True)

    assert forced.status_code == 200
    assert (forced.json()["last_read_seq"], forced.json()["unread_count"]) == (1, 3)
    assert _numbers(as_alice, public_with_bob) == (1, 3, 0)


def test_reading_past_the_newest_message_stops_there(as_alice, public_with_bob, bob_sends):
    bob_sends()

    response = _read(as_alice, public_with_bob, 10**9)

    assert response.json()["last_read_seq"] == public_with_bob.last_seq == 1
    bob_sends()
    assert _numbers(as_alice, public_with_bob) == (1, 1, 0)


def test_seq_may_be_sent_as_digits_from_a_form(as_alice, public_with_bob, bob_sends):
    bob_sends(), bob_sends()

    response = as_alice.post(f"/api/rooms/{public_with_bob.pk}/read/", {"seq": "1"})

    assert response.status_code == 200
    assert response.json()["last_read_seq"] == 1


@pytest.mark.parametrize("seq", [-1, 1.5, "x", "", None, True, [1], 2**64, "²"])
def test_a_bad_seq_gives_400_on_seq_and_moves_nothing(as_alice, public_with_bob, bob_sends, seq):
    bob_sends()

    response = _read(as_alice, public_with_bob, seq)

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["seq"]
    assert _numbers(as_alice, public_with_bob)[0] == 0


@pytest.mark.parametrize(
    ("payload", "field"), [({}, "seq"), ({"seq": 1, "force": "sure"}, "force")]
)
def test_a_missing_seq_or_bad_force_gives_400_on_it(as_alice, public_with_bob, payload, field):
    response = as_alice.post(f"/api/rooms/{public_with_bob.pk}/read/", payload, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == [field]


def test_mentions_of_you_and_of_the_room_have_their_own_count(
    as_alice, as_bob, as_carol, public_with_bob, carol, bob_sends
):
    services.room_join(room=public_with_bob, user=carol)
    bob_sends("hey @alice")
    bob_sends("plain")
    bob_sends("all of you, @room")
    bob_sends("`@alice` in code is no mention")

    assert _numbers(as_alice, public_with_bob) == (0, 4, 2)
    assert _numbers(as_carol, public_with_bob) == (0, 4, 1)
    assert _numbers(as_bob, public_with_bob) == (4, 0, 0)  # his own posts moved his pointer

    _read(as_alice, public_with_bob, 1)

    assert _numbers(as_alice, public_with_bob) == (1, 3, 1)


def test_unread_counts_stop_at_100(as_alice, public_with_bob, bob_sends):
    for n in range(103):
        bob_sends(f"m{n}")

    body = _room(as_alice, public_with_bob)

    assert body["unread_count"] == 100
    assert body["last_seq"] == 103


def test_posting_in_a_public_room_joins_you(as_carol, public_room, carol):
    as_carol.post(f"/api/rooms/{public_room.pk}/messages/", {"body": "hi"}, format="json")

    body = _room(as_carol, public_room)

    assert (body["is_member"], body["role"], body["member_count"]) == (True, "member", 2)


# --- The list --------------------------------------------------------------------------------


def test_the_list_carries_every_rooms_read_state(
    as_alice, public_with_bob, group, private_room, bob, alice, bob_sends
):
    lobby = services.room_create(name="lobby", creator=bob)  # Alice has not joined it
    bob_sends("in general")
    bob_sends("@alice in the group", room=group)
    services.message_send(room=private_room, author=bob, body="psst")
    services.message_send(room=lobby, author=bob, body="nobody here")

    rooms = {room["id"]: room for room in as_alice.get("/api/rooms/").json()["results"]}

    def pick(room):
        return {
            k: rooms[room.pk][k] for k in ("kind", "is_member", "unread_count", "mention_count")
        }

    assert pick(public_with_bob) == {
        "kind": "public",
        "is_member": True,
        "unread_count": 1,
        "mention_count": 0,
    }
    assert pick(group) == {
        "kind": "private",
        "is_member": True,
        "unread_count": 1,
        "mention_count": 1,
    }
    assert pick(private_room) == {
        "kind": "dm",
        "is_member": True,
        "unread_count": 1,
        "mention_count": 0,
    }
    assert pick(lobby) == {
        "kind": "public",
        "is_member": False,
        "unread_count": 0,
        "mention_count": 0,
    }
    assert rooms[private_room.pk]["title"] == "Bob"
    assert rooms[group.pk]["title"] == "team"
    assert rooms[public_with_bob.pk]["member_count"] == 2


def test_joined_lists_only_the_rooms_you_belong_to(as_alice, public_room, group, private_room, bob):
    lobby = services.room_create(name="lobby", creator=bob)

    everything = {room["id"] for room in as_alice.get("/api/rooms/").json()["results"]}
    joined = as_alice.get("/api/rooms/", {"joined": "1"}).json()

    assert everything == {public_room.pk, group.pk, private_room.pk, lobby.pk}
    assert {room["id"] for room in joined["results"]} == {public_room.pk, group.pk, private_room.pk}
    assert joined["count"] == 3
    assert all(room["is_member"] for room in joined["results"])
    unjoined = as_alice.get("/api/rooms/", {"joined": "0"}).json()
    assert {room["id"] for room in unjoined["results"]} == everything


def test_a_bad_joined_value_gives_400(as_alice):
    response = as_alice.get("/api/rooms/", {"joined": "maybe"})

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["joined"]


@pytest.mark.parametrize("joined", ["", "?joined=1"])
def test_room_list_costs_the_same_queries_however_many_rooms_and_messages(
    as_alice, alice, bob, make_user, django_assert_num_queries, unlimited, joined
):
    def add(count):
        for _ in range(count):
            other = make_user(display_name="Someone")
            dm, _created = services.dm_get_or_create(user=alice, other=other)
            group = services.room_create(
                name=f"group {other.pk}", creator=other, private=True, members=["alice", "bob"]
            )
            public = services.room_create(name=f"room {other.pk}", creator=other)
            services.room_join(room=public, user=alice)
            services.room_create(name=f"unjoined {other.pk}", creator=other)
            for room in (dm, group, public):
                for body in ("hi", "@alice hi", "@room hi"):
                    services.message_send(room=room, author=other, body=body)

    add(1)
    # token → user, count, the page (member counts annotated), the DMs' members with their
    # profiles, your read state of the page's rooms.
    with django_assert_num_queries(5):
        small = as_alice.get(f"/api/rooms/{joined}")
    add(5)
    with django_assert_num_queries(5):
        large = as_alice.get(f"/api/rooms/{joined}")

    per_add = 3 if joined else 4
    assert small.json()["count"] == per_add
    assert large.json()["count"] == 6 * per_add
    results = large.json()["results"]
    assert {r["unread_count"] for r in results if r["is_member"]} == {3}
    assert {r["mention_count"] for r in results if r["is_member"]} == {2}
    assert {r["title"] for r in results if r["kind"] == "dm"} == {"Someone"}


def test_room_detail_costs_a_constant_number_of_queries(
    as_alice, group, bob, django_assert_num_queries, unlimited
):
    for n in range(5):
        services.message_send(room=group, author=bob, body=f"@alice {n}")

    # token → user, the room (member count annotated), your read state.
    with django_assert_num_queries(3):
        body = as_alice.get(f"/api/rooms/{group.pk}/").json()

    assert (body["unread_count"], body["mention_count"]) == (5, 5)


# --- Mentions in message objects ----------------------------------------------------------------


def _messages(client, room):
    return {m["id"]: m for m in client.get(f"/api/rooms/{room.pk}/messages/").json()["results"]}


def test_message_objects_carry_the_ids_of_the_people_they_mention(
    as_carol, public_with_bob, alice, bob, carol, bob_sends
):
    services.room_join(room=public_with_bob, user=carol)
    both = bob_sends("@alice and @CAROL, see @nobody")
    room_wide = bob_sends("@room")
    plain = bob_sends("no one")

    messages = _messages(as_carol, public_with_bob)

    assert sorted(messages[both.pk]["mentions"]) == sorted([alice.pk, carol.pk])
    assert messages[room_wide.pk]["mentions"] == []
    assert messages[plain.pk]["mentions"] == []
    assert f'data-mention="{alice.pk}"' in messages[both.pk]["html"]
    assert 'data-mention="room"' in messages[room_wide.pk]["html"]


def test_a_sent_message_answers_with_its_mentions(as_bob, public_with_bob, alice):
    response = as_bob.post(
        f"/api/rooms/{public_with_bob.pk}/messages/", {"body": "hi @alice"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["mentions"] == [alice.pk]


def test_an_edit_recomputes_the_mentions(as_bob, public_with_bob, alice, bob, carol, bob_sends):
    services.room_join(room=public_with_bob, user=carol)
    message = bob_sends("hi @alice")

    response = as_bob.patch(
        f"/api/rooms/{public_with_bob.pk}/messages/{message.pk}/",
        {"body": "hi @carol"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["mentions"] == [carol.pk]


def test_a_deleted_message_mentions_nobody(as_alice, public_with_bob, bob, bob_sends):
    message = bob_sends("hi @alice")
    services.message_delete(room=public_with_bob, user=bob, message_id=message.pk)

    body = as_alice.get(f"/api/rooms/{public_with_bob.pk}/messages/{message.pk}/").json()

    assert (body["deleted"], body["mentions"]) == (True, [])
    synced = as_alice.get(f"/api/rooms/{public_with_bob.pk}/messages/?after=0").json()
    assert synced["results"][0]["mentions"] == []


def test_an_outsider_cannot_read_a_groups_mentions(as_carol, group, bob, send):
    send(group, bob, "@alice secret")

    response = as_carol.get(f"/api/rooms/{group.pk}/messages/")

    assert response.status_code == 404


def test_read_pointer_moves_are_rate_limited_with_429(
    as_alice, public_with_bob, bob_sends, settings, monkeypatch
):
    from apps.core import ratelimit

    monkeypatch.setattr(ratelimit, "_clock", lambda: 1_800_000_000.0)
    settings.PARLEY_READ_RATE = (2, 10)
    bob_sends("one")
    assert _read(as_alice, public_with_bob, 1).status_code == 200
    assert _read(as_alice, public_with_bob, 1).status_code == 200

    response = _read(as_alice, public_with_bob, 1)

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "too fast" in error_of(response)["message"]
