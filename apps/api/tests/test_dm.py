"""/api/dm/: open the private conversation with someone (dm_get_or_create)."""

import pytest

from apps.api.testing import error_of
from apps.chat.models import Room


def test_first_dm_creates_the_private_room_201_then_200_with_the_same_room(as_alice, alice, bob):
    first = as_alice.post("/api/dm/", {"username": "bob"}, format="json")
    again = as_alice.post("/api/dm/", {"username": "bob"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    room = Room.objects.get(pk=first.json()["id"])
    assert room.is_private
    assert set(room.memberships.values_list("user_id", flat=True)) == {alice.pk, bob.pk}
    assert first.json()["title"] == "Bob"
    assert (first.json()["kind"], first.json()["is_member"], first.json()["notify"]) == (
        "dm",
        True,
        "all",
    )
    assert first.json()["member_count"] == 2


def test_the_other_side_gets_the_same_room(token_client, alice, bob, private_room):
    response = token_client(bob).post("/api/dm/", {"username": "alice"}, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == private_room.pk


def test_username_matching_ignores_case(as_alice, bob):
    response = as_alice.post("/api/dm/", {"username": "BOB"}, format="json")

    assert response.status_code == 201


@pytest.mark.parametrize("username", ["nobody", "sleepy"])
def test_unknown_or_inactive_username_gives_404_json(as_alice, make_user, username):
    make_user("sleepy", is_active=False)

    response = as_alice.post("/api/dm/", {"username": username}, format="json")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert not Room.objects.exists()


def test_dm_with_yourself_gives_400_on_username(as_alice):
    response = as_alice.post("/api/dm/", {"username": "alice"}, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["username"]
    assert not Room.objects.exists()


@pytest.mark.parametrize(
    "payload", [{}, {"username": 7}, {"username": None}, {"username": "b\x00b"}]
)
def test_missing_or_wrong_type_username_gives_400(as_alice, payload):
    response = as_alice.post("/api/dm/", payload, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["username"]
