"""Who may do what to a room: every route of issue 10, for the owner, a member, a non-member
(public room), an outsider (private room: 404, as if it did not exist) and an anonymous caller
(401) — and that a refused request changes nothing."""

import pytest

from apps.api.testing import error_of, inputs_of
from apps.chat import services
from apps.chat.models import Membership, Room

# name → (method, url template, JSON payload). {other} is the user id the caller would remove.
ROUTES = {
    "get": ("get", "/api/rooms/{pk}/", None),
    "rename": ("patch", "/api/rooms/{pk}/", {"name": "renamed", "topic": "A new topic"}),
    "delete": ("delete", "/api/rooms/{pk}/", None),
    "join": ("post", "/api/rooms/{pk}/join/", None),
    "leave": ("post", "/api/rooms/{pk}/leave/", None),
    "members": ("get", "/api/rooms/{pk}/members/", None),
    "member_add": ("post", "/api/rooms/{pk}/members/", {"username": "dave"}),
    "member_remove": ("delete", "/api/rooms/{pk}/members/{other}/", None),
    "read": ("post", "/api/rooms/{pk}/read/", {"seq": 1}),
    "notify": ("patch", "/api/rooms/{pk}/membership/", {"notify": "all"}),
    "options": ("options", "/api/rooms/{pk}/members/", None),
}

# The answer each caller gets, route by route (in ROUTES order).
PUBLIC = {
    # Public rooms: anyone signed in joins; members are not added or removed by an owner.
    "owner": [200, 200, 204, 200, 204, 200, 403, 403, 200, 200, 200],
    "member": [200, 403, 403, 200, 204, 200, 403, 403, 200, 200, 200],
    "non-member": [200, 403, 403, 201, 204, 200, 403, 403, 403, 403, 200],
}
GROUP = {
    "owner": [200, 200, 204, 200, 204, 200, 201, 204, 200, 200, 200],
    "member": [200, 403, 403, 200, 204, 200, 403, 403, 200, 200, 200],
    "outsider": [404] * len(ROUTES),
}
DM = {
    # Nobody manages a 1:1 conversation, and it cannot be left.
    "participant": [200, 403, 403, 200, 403, 200, 403, 403, 200, 200, 200],
    "outsider": [404] * len(ROUTES),
}


def _cases(kind, table):
    return [
        pytest.param(kind, who, name, expected, id=f"{kind}-{who}-{name}")
        for who, statuses in table.items()
        for name, expected in zip(ROUTES, statuses, strict=True)
    ]


def _call(client, name, **kwargs):
    method, template, payload = ROUTES[name]
    url = template.format(**kwargs)
    if payload is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, payload, format="json")


def _state(room_pk):
    """Everything a route could change about a room."""
    room = Room.objects.filter(pk=room_pk).values("name", "topic").first()
    members = sorted(
        Membership.objects.filter(room_id=room_pk).values_list(
            "user__username", "role", "notify", "last_read_seq"
        )
    )
    return room, members


@pytest.fixture
def dm(private_room, bob, send):
    send(private_room, bob, "hi")
    return private_room


@pytest.fixture
def callers(token_client, alice, bob, carol, dave):
    """who → (client, the user id they would remove)."""
    return {
        "owner": (token_client(alice), bob.pk),
        "participant": (token_client(alice), bob.pk),
        "member": (token_client(bob), alice.pk),
        "non-member": (token_client(carol), bob.pk),
        "outsider": (token_client(carol), bob.pk),
    }


def _room(request, kind, alice, bob, send):
    room = request.getfixturevalue(
        {"public": "public_with_bob", "group": "group", "dm": "dm"}[kind]
    )
    if kind != "dm":
        send(room, bob, "hi")
    return room


@pytest.mark.parametrize(
    ("kind", "who", "name", "expected"),
    _cases("public", PUBLIC) + _cases("group", GROUP) + _cases("dm", DM),
)
def test_every_route_answers_each_caller_as_the_rules_say(
    request, callers, alice, bob, send, kind, who, name, expected
):
    room = _room(request, kind, alice, bob, send)
    client, other = callers[who]
    before = _state(room.pk)

    response = _call(client, name, pk=room.pk, other=other)

    assert response.status_code == expected, response.content
    if expected != 204:
        assert response["Content-Type"] == "application/json"
    if expected >= 400:
        assert error_of(response)["fields"] == {}
        assert _state(room.pk) == before
    if expected == 404:
        # As if the room did not exist: the same answer as for a missing id.
        assert response.json() == _call(client, name, pk=room.pk + 1000, other=other).json()
        assert b"team" not in response.content and b"hi" not in response.content


@pytest.mark.parametrize("name", list(ROUTES))
@pytest.mark.parametrize("kind", ["public", "group"])
def test_anonymous_gets_401_on_every_route_and_changes_nothing(
    request, anon, alice, bob, send, kind, name
):
    room = _room(request, kind, alice, bob, send)
    before = _state(room.pk)

    response = _call(anon, name, pk=room.pk, other=bob.pk)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert _state(room.pk) == before


# --- Creating ----------------------------------------------------------------------------------


def test_private_group_is_created_with_its_members_and_you_as_owner(as_alice, alice, bob, carol):
    response = as_alice.post(
        "/api/rooms/",
        {"name": "team", "private": True, "members": ["bob", "CAROL"], "topic": "Plans"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    room = Room.objects.get(pk=body["id"])
    assert (room.name, room.is_private, room.dm_key, room.topic) == ("team", True, None, "Plans")
    assert response["Location"] == f"http://testserver/api/rooms/{room.pk}/"
    roles = dict(room.memberships.values_list("user__username", "role"))
    assert roles == {"alice": "owner", "bob": "member", "carol": "member"}
    assert body["kind"] == "private"
    assert body["title"] == "team"
    assert body["topic"] == "Plans"
    assert body["is_private"] is True
    assert (body["is_member"], body["role"], body["member_count"]) == (True, "owner", 3)
    assert body["members_url"] == f"http://testserver/api/rooms/{room.pk}/members/"


def test_private_group_is_seen_by_its_members_only(as_alice, as_bob, as_carol, group):
    def ids(client):
        return {room["id"] for room in client.get("/api/rooms/").json()["results"]}

    assert group.pk in ids(as_alice)
    assert group.pk in ids(as_bob)
    assert group.pk not in ids(as_carol)
    assert as_bob.get(f"/api/rooms/{group.pk}/").json()["role"] == "member"


def test_without_private_the_room_is_public_as_before(as_alice):
    body = as_alice.post("/api/rooms/", {"name": "lounge"}, format="json").json()

    assert (body["kind"], body["is_private"], body["role"], body["notify"]) == (
        "public",
        False,
        "owner",
        "mentions",
    )
    assert body["topic"] == ""


@pytest.mark.parametrize("members", [["nobody"], ["bob", "sleepy"]])
def test_unknown_or_inactive_members_give_400_on_members_naming_them(
    as_alice, bob, make_user, members
):
    make_user("sleepy", is_active=False)

    response = as_alice.post(
        "/api/rooms/", {"name": "team", "private": True, "members": members}, format="json"
    )

    assert response.status_code == 400
    assert inputs_of(response) == ["members"]
    assert members[-1] in " ".join(sum(error_of(response)["fields"].values(), []))
    assert not Room.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "team", "private": "maybe"}, "private"),
        ({"name": "team", "private": 1.5}, "private"),
        ({"name": "team", "private": True, "members": "bob"}, "members"),
        ({"name": "team", "private": True, "members": [7]}, "members"),
        ({"name": "team", "private": True, "topic": 7}, "topic"),
        ({"name": "", "private": True, "members": ["bob"]}, "name"),
        ({"private": True, "members": ["bob"]}, "name"),
    ],
)
def test_badly_shaped_group_requests_give_400_on_the_field(as_alice, bob, payload, field):
    response = as_alice.post("/api/rooms/", payload, format="json")

    assert response.status_code == 400
    assert field in inputs_of(response)
    assert not Room.objects.exists()


def test_a_topic_too_long_gives_400_on_topic(as_alice):
    response = as_alice.post("/api/rooms/", {"name": "lounge", "topic": "t" * 251}, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["topic"]
    assert not Room.objects.exists()


# --- Renaming, topic, deleting -----------------------------------------------------------------


def test_owner_renames_a_group_and_sets_its_topic(as_alice, as_bob, group):
    response = as_alice.patch(
        f"/api/rooms/{group.pk}/", {"name": "squad", "topic": "Ship it"}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["topic"]) == ("squad", "Ship it")
    assert response.json()["title"] == "squad"
    group.refresh_from_db()
    assert (group.name, group.topic) == ("squad", "Ship it")
    assert as_bob.get(f"/api/rooms/{group.pk}/").json()["topic"] == "Ship it"


def test_patch_leaves_out_what_it_does_not_name(as_alice, public_room):
    as_alice.patch(f"/api/rooms/{public_room.pk}/", {"topic": "Say hi"}, format="json")
    response = as_alice.patch(f"/api/rooms/{public_room.pk}/", {"name": "lobby"}, format="json")

    assert (response.json()["name"], response.json()["topic"]) == ("lobby", "Say hi")


def test_renaming_a_public_room_to_a_taken_name_gives_400_on_name(as_alice, public_room, alice):
    services.room_create(name="random", creator=alice)

    response = as_alice.patch(f"/api/rooms/{public_room.pk}/", {"name": "RANDOM"}, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["name"]
    assert Room.objects.get(pk=public_room.pk).name == "general"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        pytest.param({"topic": "t" * 251}, "topic"),
    ],
)
def test_invalid_rename_or_topic_gives_400_on_the_field(as_alice, public_room, payload, field):
    response = as_alice.patch(f"/api/rooms/{public_room.pk}/", payload, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == [field]
    public_room.refresh_from_db()
    assert (public_room.name, public_room.topic) == ("general", "")


def test_owner_may_restrict_room_mentions_to_owners(as_alice, as_bob, group):
    response = as_alice.patch(f"/api/rooms/{group.pk}/", {"room_mentions": "owners"}, format="json")

    assert response.status_code == 200
    assert response.json()["room_mentions"] == "owners"
    refused = as_bob.post(f"/api/rooms/{group.pk}/messages/", {"body": "@room hey"}, format="json")
    assert refused.status_code == 400
    assert list(error_of(refused)["fields"]) == ["body"]


def test_put_is_not_allowed(as_alice, public_room):
    response = as_alice.put(f"/api/rooms/{public_room.pk}/", {"name": "x"}, format="json")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert Room.objects.get(pk=public_room.pk).name == "general"


def test_renaming_too_fast_gives_429_with_retry_after(as_alice, public_room, settings):
    settings.PARLEY_ROOM_ADMIN_RATE = (1, 60)
    first = as_alice.patch(f"/api/rooms/{public_room.pk}/", {"topic": "a"}, format="json")
    assert first.status_code == 200

    response = as_alice.patch(f"/api/rooms/{public_room.pk}/", {"topic": "b"}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert Room.objects.get(pk=public_room.pk).topic == "a"


def test_deleting_a_group_removes_it_for_everyone(as_alice, as_bob, group, bob, send):
    send(group, bob, "bye")

    response = as_alice.delete(f"/api/rooms/{group.pk}/")

    assert response.status_code == 204
    assert not Room.objects.filter(pk=group.pk).exists()
    assert as_bob.get(f"/api/rooms/{group.pk}/").status_code == 404
    assert as_bob.get(f"/api/rooms/{group.pk}/messages/").status_code == 404


# --- Joining and leaving -----------------------------------------------------------------------


def test_joining_a_public_room_makes_you_a_member(as_carol, public_room, carol):
    before = as_carol.get(f"/api/rooms/{public_room.pk}/").json()
    response = as_carol.post(f"/api/rooms/{public_room.pk}/join/")
    again = as_carol.post(f"/api/rooms/{public_room.pk}/join/")

    assert (before["is_member"], before["member_count"]) == (False, 1)
    assert response.status_code == 201
    assert again.status_code == 200
    body = response.json()
    assert (body["is_member"], body["role"], body["notify"], body["member_count"]) == (
        True,
        "member",
        "mentions",
        2,
    )
    assert body["last_read_seq"] == 0
    assert Membership.objects.filter(room=public_room, user=carol).count() == 1


def test_leaving_a_public_room_keeps_it_readable(as_bob, public_with_bob, bob):
    response = as_bob.post(f"/api/rooms/{public_with_bob.pk}/leave/")

    assert response.status_code == 204
    assert not Membership.objects.filter(room=public_with_bob, user=bob).exists()
    body = as_bob.get(f"/api/rooms/{public_with_bob.pk}/").json()
    assert (body["is_member"], body["role"], body["unread_count"]) == (False, None, 0)
    assert as_bob.post(f"/api/rooms/{public_with_bob.pk}/leave/").status_code == 204


def test_leaving_a_group_makes_it_disappear_for_you(as_bob, group, bob):
    assert as_bob.post(f"/api/rooms/{group.pk}/leave/").status_code == 204

    assert as_bob.get(f"/api/rooms/{group.pk}/").status_code == 404
    assert group.pk not in {r["id"] for r in as_bob.get("/api/rooms/").json()["results"]}


def test_the_last_owner_leaving_promotes_the_oldest_member(as_alice, as_bob, group):
    assert as_alice.post(f"/api/rooms/{group.pk}/leave/").status_code == 204

    assert as_bob.get(f"/api/rooms/{group.pk}/").json()["role"] == "owner"


def test_the_last_member_leaving_deletes_the_group(as_alice, as_bob, group):
    as_bob.post(f"/api/rooms/{group.pk}/leave/")
    as_alice.post(f"/api/rooms/{group.pk}/leave/")

    assert not Room.objects.filter(pk=group.pk).exists()


def test_a_group_cannot_be_joined_by_an_outsider(as_carol, group, carol):
    response = as_carol.post(f"/api/rooms/{group.pk}/join/")

    assert response.status_code == 404
    assert not Membership.objects.filter(room=group, user=carol).exists()


# --- Members -----------------------------------------------------------------------------------


def test_members_lists_owners_first_with_names_and_roles(as_carol, public_room, make_user):
    for name in ("zed", "amy"):
        services.room_join(room=public_room, user=make_user(name, display_name=name.title()))

    response = as_carol.get(f"/api/rooms/{public_room.pk}/members/")

    assert response.status_code == 200
    members = response.json()
    assert members[0] == {
        "id": public_room.created_by_id,
        "username": "alice",
        "display_name": "Alice",
        "name": "Alice",
        "avatar": None,
        "is_bot": False,
        "role": "owner",
    }
    assert {m["username"] for m in members[1:]} == {"zed", "amy"}
    assert {m["role"] for m in members[1:]} == {"member"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("b", {"bob", "bea"}),
        ("B", {"bob", "bea"}),
        ("@bo", {"bob"}),
        ("bu", {"bea"}),  # her display name "Buzz"
        ("light", {"bea"}),  # a later word of it: "Buzz Lightyear"
        ("x", set()),
        ("", {"alice", "bob", "bea"}),
    ],
)
def test_members_q_filters_by_username_or_display_name_prefix(
    as_alice, public_with_bob, make_user, query, expected
):
    services.room_join(room=public_with_bob, user=make_user("bea", display_name="Buzz Lightyear"))

    response = as_alice.get(f"/api/rooms/{public_with_bob.pk}/members/", {"q": query})

    assert response.status_code == 200
    assert {m["username"] for m in response.json()} == expected


@pytest.mark.parametrize("query", ["%00", "b%00", "%0Abo", "%7F"])
def test_members_q_with_control_characters_matches_nobody(as_alice, public_with_bob, query):
    """?q=%00 was a database error on PostgreSQL (500): now nobody's name matches."""
    response = as_alice.get(f"/api/rooms/{public_with_bob.pk}/members/?q={query}")

    assert response.status_code == 200
    assert response.json() == []


def test_members_q_answers_at_most_20(as_alice, public_room, make_user):
    for n in range(25):
        services.room_join(room=public_room, user=make_user(f"m{n:02}"))

    assert len(as_alice.get(f"/api/rooms/{public_room.pk}/members/", {"q": "m"}).json()) == 20
    assert len(as_alice.get(f"/api/rooms/{public_room.pk}/members/").json()) == 26


def test_owner_adds_a_member_who_then_sees_the_group(as_alice, token_client, group, dave):
    response = as_alice.post(f"/api/rooms/{group.pk}/members/", {"username": "dave"}, format="json")

    assert response.status_code == 201
    assert response.json() == {
        "id": dave.pk,
        "username": "dave",
        "display_name": "Dave",
        "name": "Dave",
        "avatar": None,
        "is_bot": False,
        "role": "member",
    }
    assert token_client(dave).get(f"/api/rooms/{group.pk}/").json()["role"] == "member"


@pytest.mark.parametrize("username", ["nobody", "sleepy", 7, None])
def test_adding_an_unknown_inactive_or_malformed_username_gives_400_on_username(
    as_alice, group, make_user, username
):
    make_user("sleepy", is_active=False)
    before = _state(group.pk)

    response = as_alice.post(
        f"/api/rooms/{group.pk}/members/", {"username": username}, format="json"
    )

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["username"]
    assert _state(group.pk) == before


def test_adding_members_too_fast_gives_429(as_alice, group, make_user, settings):
    settings.PARLEY_ROOM_ADMIN_RATE = (1, 60)
    make_user("x1"), make_user("x2")
    assert as_alice.post(f"/api/rooms/{group.pk}/members/", {"username": "x1"}).status_code == 201

    response = as_alice.post(f"/api/rooms/{group.pk}/members/", {"username": "x2"})

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert not group.memberships.filter(user__username="x2").exists()


def test_owner_removes_a_member_who_then_gets_404(as_alice, as_bob, group, bob):
    response = as_alice.delete(f"/api/rooms/{group.pk}/members/{bob.pk}/")

    assert response.status_code == 204
    assert not group.memberships.filter(user=bob).exists()
    assert as_bob.get(f"/api/rooms/{group.pk}/").status_code == 404
    assert as_bob.get(f"/api/rooms/{group.pk}/messages/").status_code == 404


def test_removing_yourself_is_refused_with_400(as_alice, group, alice):
    response = as_alice.delete(f"/api/rooms/{group.pk}/members/{alice.pk}/")

    assert response.status_code == 400
    assert error_of(response)["fields"] == {}
    assert group.memberships.filter(user=alice).exists()


def test_removing_someone_who_is_not_a_member_is_404(as_alice, group, carol):
    for user_id in (carol.pk, 10**9):
        response = as_alice.delete(f"/api/rooms/{group.pk}/members/{user_id}/")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert error_of(response)["message"] == "That person is not a member of this room."


def test_adding_someone_already_a_member_is_200(as_alice, group, bob):
    before = _state(group.pk)

    response = as_alice.post(f"/api/rooms/{group.pk}/members/", {"username": "BOB"}, format="json")

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["role"]) == (bob.pk, "member")
    assert _state(group.pk) == before


def test_member_routes_with_huge_or_bad_ids_are_json_404(as_alice, group):
    for method, url in (
        ("delete", f"/api/rooms/{group.pk}/members/{2**70}/"),
        ("delete", f"/api/rooms/{group.pk}/members/abc/"),
        ("delete", f"/api/rooms/{2**70}/members/1/"),
        ("get", f"/api/rooms/{2**70}/members/"),
        ("post", f"/api/rooms/{2**70}/read/"),
    ):
        response = getattr(as_alice, method)(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json"


# --- Notify setting ----------------------------------------------------------------------------


@pytest.mark.parametrize("notify", ["all", "mentions", "none"])
def test_member_sets_how_a_room_notifies_them(as_bob, group, bob, notify):
    response = as_bob.patch(f"/api/rooms/{group.pk}/membership/", {"notify": notify}, format="json")

    assert response.status_code == 200
    assert response.json()["notify"] == notify
    assert Membership.objects.get(room=group, user=bob).notify == notify


def test_a_dm_notifies_every_message_by_default(as_alice, private_room):
    assert as_alice.get(f"/api/rooms/{private_room.pk}/").json()["notify"] == "all"


@pytest.mark.parametrize("notify", ["loud", "", None, 3])
def test_a_bad_notify_value_gives_400_on_notify(as_bob, group, bob, notify):
    response = as_bob.patch(f"/api/rooms/{group.pk}/membership/", {"notify": notify}, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["notify"]
    assert Membership.objects.get(room=group, user=bob).notify == "mentions"


# --- The browsable API -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "members/", "read/", "membership/", "join/"])
def test_browsable_api_pages_of_a_room_render(client, alice, group, path):
    client.force_login(alice)

    response = client.get(f"/api/rooms/{group.pk}/{path}", HTTP_ACCEPT="text/html")

    assert response.status_code in (200, 405)
    assert response["Content-Type"].startswith("text/html")


# --- Whatever the body: JSON, never a 500 ------------------------------------------------------

BODY_ROUTES = [
    ("post", "/api/rooms/"),
    ("patch", "/api/rooms/{pk}/"),
    ("post", "/api/rooms/{pk}/members/"),
    ("post", "/api/rooms/{pk}/read/"),
    ("patch", "/api/rooms/{pk}/membership/"),
]


ODD_OBJECT = b'{"name": {}, "seq": {"a": 1}, "username": [], "notify": {}}'


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"7", b"null", b"{", ODD_OBJECT])
@pytest.mark.parametrize(("method", "template"), BODY_ROUTES)
def test_malformed_or_non_object_bodies_give_400_json_and_change_nothing(
    as_alice, group, method, template, raw
):
    before = _state(group.pk), Room.objects.count()

    response = getattr(as_alice, method)(
        template.format(pk=group.pk), raw, content_type="application/json"
    )

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert (_state(group.pk), Room.objects.count()) == before


@pytest.mark.parametrize(
    "payload",
    [
        {"name": {"a": 1}},
        {"topic": ["x"]},
        {"room_mentions": "everyone"},
        {"room_mentions": 3},
        {"name": None},
        {"name": "a\x00b"},
    ],
)
def test_badly_shaped_patches_give_400_json_and_change_nothing(as_alice, group, payload):
    before = _state(group.pk)

    response = as_alice.patch(f"/api/rooms/{group.pk}/", payload, format="json")

    assert response.status_code == 400, response.content
    assert list(error_of(response)["fields"]) == [next(iter(payload))]
    assert _state(group.pk) == before
