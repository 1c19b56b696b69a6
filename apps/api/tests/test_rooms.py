"""/api/rooms/: list, detail and create (through room_create)."""

import pytest

from apps.api.testing import error_of
from apps.chat.models import Membership, Room


def test_room_detail_carries_id_name_privacy_title_times_and_last_seq(
    as_alice, public_room, alice, send
):
    send(public_room, alice, "hi")

    body = as_alice.get(f"/api/rooms/{public_room.pk}/").json()

    assert body["id"] == public_room.pk
    assert body["name"] == "general"
    assert body["is_private"] is False
    assert body["kind"] == "public"
    assert body["title"] == "general"
    assert (body["is_member"], body["role"], body["member_count"]) == (True, "owner", 1)
    # Her own post moved her pointer to it.
    assert (body["unread_count"], body["mention_count"], body["last_read_seq"]) == (0, 0, 1)
    assert body["last_seq"] == 1
    assert body["created_at"] and body["last_message_at"]
    assert body["url"] == f"http://testserver/api/rooms/{public_room.pk}/"
    assert body["messages_url"] == f"http://testserver/api/rooms/{public_room.pk}/messages/"


def test_private_room_title_is_the_other_participant(token_client, alice, bob, private_room):
    assert token_client(alice).get(f"/api/rooms/{private_room.pk}/").json()["title"] == "Bob"
    assert token_client(bob).get(f"/api/rooms/{private_room.pk}/").json()["title"] == "Alice"


def test_room_list_costs_the_same_queries_however_many_private_rooms(
    as_alice, alice, make_user, django_assert_num_queries
):
    from apps.chat.services import dm_get_or_create

    def open_dms(count):
        for _ in range(count):
            dm_get_or_create(user=alice, other=make_user(display_name="Someone"))

    open_dms(2)
    # token → user, count, the page, the private rooms' members with their profiles, your read
    # state of the page's rooms.
    with django_assert_num_queries(5):
        as_alice.get("/api/rooms/")
    open_dms(6)
    with django_assert_num_queries(5):
        response = as_alice.get("/api/rooms/")

    assert response.json()["count"] == 8
    assert {room["title"] for room in response.json()["results"]} == {"Someone"}


def test_create_room_makes_a_public_room_owned_by_you(as_alice, alice):
    response = as_alice.post("/api/rooms/", {"name": "  lounge  "}, format="json")

    assert response.status_code == 201
    room = Room.objects.get(pk=response.json()["id"])
    assert (room.name, room.is_private) == ("lounge", False)
    assert Membership.objects.get(room=room).user == alice
    assert response["Location"] == f"http://testserver/api/rooms/{room.pk}/"
    assert response.json()["title"] == "lounge"


@pytest.mark.parametrize(
    "payload",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 65},
        {"name": 5},
        {"name": None},
        {"name": ["general"]},
        {"name": "a\x00b"},
        {},
        {"name": "GENERAL"},
    ],
)
def test_invalid_or_duplicate_room_name_gives_400_on_name_and_creates_nothing(
    as_alice, public_room, payload
):
    response = as_alice.post("/api/rooms/", payload, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["name"]
    assert Room.objects.count() == 1


def test_creating_rooms_too_fast_gives_429(as_alice, settings):
    settings.PARLEY_ROOM_CREATE_RATE = (1, 60)
    assert as_alice.post("/api/rooms/", {"name": "one"}, format="json").status_code == 201

    response = as_alice.post("/api/rooms/", {"name": "two"}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert not Room.objects.filter(name="two").exists()


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_only_an_owner_changes_or_deletes_a_room(as_bob, public_room, method):
    response = getattr(as_bob, method)(
        f"/api/rooms/{public_room.pk}/", {"name": "x"}, format="json"
    )

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert Room.objects.get(pk=public_room.pk).name == "general"


def test_a_huge_room_id_is_404_not_a_database_error(as_alice):
    response = as_alice.get(f"/api/rooms/{2**70}/messages/")

    assert response.status_code == 404
