"""GET /api/rooms/<id>/receipts/: how far each member who sends read receipts has read, in
rooms of at most 10 members; nobody's for a requester who sends none; 404 where the access rule
says the room does not exist."""

import pytest

from apps.chat import receipts, services
from apps.profiles import services as profile_services


def _receipts(client, room):
    return client.get(f"/api/rooms/{room.pk}/receipts/")


def _pointers(client, room) -> dict[int, int]:
    response = _receipts(client, room)
    assert response.status_code == 200, response.content
    return {row["user"]: row["last_read_seq"] for row in response.json()}


def _receipts_off(user):
    profile_services.profile_update(profile=user.profile, send_read_receipts=False)


@pytest.fixture
def read_group(group, alice, bob, unlimited):
    """The private group with two messages from Alice, read by Bob up to the first."""
    first = services.message_send(room=group, author=alice, body="one").message
    services.message_send(room=group, author=alice, body="two")
    services.room_mark_read(room=group, user=bob, seq=first.seq)
    return group


def test_members_see_each_others_pointers(as_alice, as_bob, read_group, alice, bob):
    expected = {alice.pk: 2, bob.pk: 1}  # Alice's own message moved her pointer

    assert _pointers(as_alice, read_group) == expected
    assert _pointers(as_bob, read_group) == expected
    assert _receipts(as_alice, read_group).json() == [
        {"user": alice.pk, "last_read_seq": 2},
        {"user": bob.pk, "last_read_seq": 1},
    ]


def test_an_outsider_of_a_private_room_gets_404(as_carol, read_group):
    response = _receipts(as_carol, read_group)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    missing = as_carol.get("/api/rooms/999999/receipts/")
    assert (missing.status_code, missing.json()) == (404, response.json())


def test_a_non_member_of_a_small_public_room_sees_its_receipts(
    as_carol, public_with_bob, alice, bob, send
):
    message = send(public_with_bob, alice, "hi")
    services.room_mark_read(room=public_with_bob, user=bob, seq=message.seq)

    assert _pointers(as_carol, public_with_bob) == {alice.pk: 1, bob.pk: 1}


def test_anonymous_is_refused_like_every_other_route(anon, read_group):
    response = _receipts(anon, read_group)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"


def test_a_room_of_more_than_ten_members_has_no_receipts(
    as_alice, public_room, alice, make_user, send
):
    send(public_room, alice, "hi")
    for n in range(receipts.RECEIPTS_MAX_MEMBERS - 1):
        services.room_join(room=public_room, user=make_user(f"user{n}"))
    assert len(_pointers(as_alice, public_room)) == receipts.RECEIPTS_MAX_MEMBERS  # 10: shown

    services.room_join(room=public_room, user=make_user("eleventh"))

    response = _receipts(as_alice, public_room)
    assert (response.status_code, response.json()) == (200, [])


def test_who_sends_no_receipts_is_left_out(as_alice, read_group, alice, bob):
    _receipts_off(bob)

    assert _pointers(as_alice, read_group) == {alice.pk: 2}


def test_who_sends_no_receipts_sees_nobodys(as_bob, read_group, bob):
    _receipts_off(bob)

    assert _pointers(as_bob, read_group) == {}


def test_a_dm_shows_the_other_persons_pointer(as_alice, alice, bob, unlimited):
    dm, _ = services.dm_get_or_create(user=alice, other=bob)
    message = services.message_send(room=dm, author=alice, body="hey").message
    assert _pointers(as_alice, dm) == {alice.pk: message.seq, bob.pk: 0}

    services.room_mark_read(room=dm, user=bob, seq=message.seq)

    assert _pointers(as_alice, dm) == {alice.pk: message.seq, bob.pk: message.seq}


def test_the_answer_costs_one_query(as_alice, read_group, django_assert_max_num_queries):
    # The token, the room (access rule) and the receipts (with the members' settings).
    with django_assert_max_num_queries(3):
        assert len(_pointers(as_alice, read_group)) == 2
