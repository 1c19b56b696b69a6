"""Who may reach what: every route, for a member, an outsider and an anonymous caller.

The rule under test is the one access rule (``Room.objects.visible_to``): a private room that is
not yours answers exactly like a room that does not exist — 404, on every route and method."""

import pytest

from apps.api.testing import error_of
from apps.chat import services
from apps.chat.models import Message

# (method, url template, JSON payload) for every route that names a room.
ROOM_ROUTES = [
    ("get", "/api/rooms/{pk}/", None),
    ("options", "/api/rooms/{pk}/", None),
    ("get", "/api/rooms/{pk}/messages/", None),
    ("post", "/api/rooms/{pk}/messages/", {"body": "knock knock"}),
    ("options", "/api/rooms/{pk}/messages/", None),
    ("get", "/api/rooms/{pk}/members/", None),
    ("get", "/api/rooms/{pk}/receipts/", None),  # issue 11
    ("options", "/api/rooms/{pk}/attachments/", None),  # issue 12 (uploads: test_attachments)
    ("get", "/api/search/?q=hello&room={pk}", None),  # issue 12
]

# (method, url template, JSON payload) for every route that names a message of a room.
MESSAGE_ROUTES = [
    ("get", "/api/rooms/{pk}/messages/{message}/", None),
    ("patch", "/api/rooms/{pk}/messages/{message}/", {"body": "edited"}),
    ("delete", "/api/rooms/{pk}/messages/{message}/", None),
    ("options", "/api/rooms/{pk}/messages/{message}/", None),
    ("post", "/api/rooms/{pk}/messages/{message}/reactions/", {"emoji": "👍"}),
    ("options", "/api/rooms/{pk}/messages/{message}/reactions/", None),
    ("delete", "/api/rooms/{pk}/messages/{message}/reactions/%F0%9F%91%8D/", None),
]

# Every route: anonymous callers get 401 (with the challenge that says how to authenticate).
ALL_ROUTES = [
    ("get", "/api/rooms/", None),
    ("post", "/api/rooms/", {"name": "anon-room"}),
    ("post", "/api/rooms/", {"name": "anon-group", "private": True, "members": ["bob"]}),
    ("get", "/api/rooms/?joined=1", None),
    *ROOM_ROUTES,
    # Issue 10's routes (every caller's answers: test_membership.py).
    ("patch", "/api/rooms/{pk}/", {"topic": "anon"}),
    ("delete", "/api/rooms/{pk}/", None),
    ("post", "/api/rooms/{pk}/join/", None),
    ("post", "/api/rooms/{pk}/leave/", None),
    ("post", "/api/rooms/{pk}/members/", {"username": "carol"}),
    ("delete", "/api/rooms/{pk}/members/{user}/", None),
    ("post", "/api/rooms/{pk}/read/", {"seq": 1}),
    ("patch", "/api/rooms/{pk}/membership/", {"notify": "none"}),
    # Issue 12: upload and discard (every caller's answers: test_attachments.py).
    ("post", "/api/rooms/{pk}/attachments/", None),
    ("delete", "/api/rooms/{pk}/attachments/1/", None),
    ("options", "/api/rooms/{pk}/attachments/1/", None),
    *MESSAGE_ROUTES,
    ("get", "/api/profiles/", None),
    ("get", "/api/profiles/{user}/", None),
    ("get", "/api/profiles/me/", None),
    ("patch", "/api/profiles/me/", {"display_name": "Mallory"}),
    ("post", "/api/dm/", {"username": "bob"}),
    ("get", "/api/search/?q=hello", None),
    ("delete", "/api/auth/token/", None),
    # Issue 13: personal access tokens (every caller's answers: test_tokens.py).
    ("get", "/api/tokens/", None),
    ("post", "/api/tokens/", {"name": "anon"}),
    ("get", "/api/tokens/1/", None),
    ("delete", "/api/tokens/1/", None),
    # Issue 13: bots and incoming webhooks (every caller's answers: test_bots.py).
    ("get", "/api/bots/", None),
    ("post", "/api/bots/", {"name": "anon"}),
    ("get", "/api/bots/1/", None),
    ("patch", "/api/bots/1/", {"name": "anon"}),
    ("delete", "/api/bots/1/", None),
    ("get", "/api/bots/1/tokens/", None),
    ("post", "/api/bots/1/tokens/", {"name": "anon"}),
    ("delete", "/api/bots/1/tokens/1/", None),
    ("get", "/api/rooms/{pk}/webhooks/", None),
    ("post", "/api/rooms/{pk}/webhooks/", {"name": "anon"}),
    ("delete", "/api/rooms/{pk}/webhooks/1/", None),
]


def _call(client, method, template, payload, **kwargs):
    url = template.format(**kwargs)
    if payload is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, payload, format="json")


@pytest.fixture
def dm_message(private_room, alice, send):
    """Alice's message in her private room with Bob, with her 👍 on it."""
    message = send(private_room, alice, "between us")
    services.reaction_add(room=private_room, user=alice, message_id=message.pk, emoji="👍")
    return message


def _message_state(message):
    row = Message.objects.get(pk=message.pk)
    return (row.body, row.version, row.deleted_at, list(row.reactions.values_list("emoji")))


@pytest.mark.parametrize(("method", "template", "payload"), ALL_ROUTES)
def test_anonymous_gets_401_json_with_token_challenge_on_every_route(
    anon, private_room, bob, dm_message, method, template, payload
):
    before = _message_state(dm_message)

    response = _call(
        anon, method, template, payload, pk=private_room.pk, user=bob.pk, message=dm_message.pk
    )

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["fields"] == {}
    assert _message_state(dm_message) == before


@pytest.mark.parametrize(("method", "template", "payload"), MESSAGE_ROUTES)
def test_outsider_gets_404_for_a_message_of_a_private_room_on_every_route(
    as_carol, private_room, dm_message, method, template, payload
):
    before = _message_state(dm_message)

    response = _call(as_carol, method, template, payload, pk=private_room.pk, message=dm_message.pk)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert b"between us" not in response.content
    assert _message_state(dm_message) == before


@pytest.mark.parametrize(
    ("method", "template", "payload", "status"),
    [
        (*route, status)
        for route, status in zip(MESSAGE_ROUTES, [200, 200, 204, 200, 200, 200, 204])
    ],
)
def test_the_author_reaches_their_message_on_every_route(
    as_alice, private_room, dm_message, method, template, payload, status
):
    response = _call(as_alice, method, template, payload, pk=private_room.pk, message=dm_message.pk)

    assert response.status_code == status


@pytest.mark.parametrize(("method", "template", "payload"), ROOM_ROUTES)
def test_outsider_gets_404_for_a_private_room_on_every_route(
    as_carol, private_room, method, template, payload
):
    response = _call(as_carol, method, template, payload, pk=private_room.pk)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert Message.objects.count() == 0


@pytest.mark.parametrize(("method", "template", "payload"), ROOM_ROUTES)
def test_a_room_that_does_not_exist_answers_exactly_like_a_hidden_one(
    as_carol, private_room, method, template, payload
):
    hidden = _call(as_carol, method, template, payload, pk=private_room.pk)
    missing = _call(as_carol, method, template, payload, pk=private_room.pk + 1000)

    assert missing.status_code == hidden.status_code == 404
    assert missing.json() == hidden.json()


@pytest.mark.parametrize(("method", "template", "payload"), ROOM_ROUTES)
def test_member_reaches_their_private_room_on_every_route(
    as_alice, private_room, method, template, payload
):
    response = _call(as_alice, method, template, payload, pk=private_room.pk)

    assert response.status_code in (200, 201)


@pytest.mark.parametrize(("method", "template", "payload"), ROOM_ROUTES)
def test_any_signed_in_user_reaches_a_public_room_on_every_route(
    as_carol, public_room, method, template, payload
):
    response = _call(as_carol, method, template, payload, pk=public_room.pk)

    assert response.status_code in (200, 201)


def test_room_list_shows_public_rooms_and_only_your_own_private_rooms(
    as_alice, as_carol, public_room, private_room
):
    alice_ids = {room["id"] for room in as_alice.get("/api/rooms/").json()["results"]}
    carol_ids = {room["id"] for room in as_carol.get("/api/rooms/").json()["results"]}

    assert alice_ids == {public_room.pk, private_room.pk}
    assert carol_ids == {public_room.pk}


def test_outsider_cannot_read_messages_of_a_private_room(as_carol, private_room, alice, send):
    send(private_room, alice, "secret")

    response = as_carol.get(f"/api/rooms/{private_room.pk}/messages/")

    assert response.status_code == 404
    assert b"secret" not in response.content


def test_root_lists_every_route_without_authentication(anon):
    response = anon.get("/api/")

    assert response.status_code == 200
    assert set(response.json()) == {
        "rooms",
        "profiles",
        "profiles/me",
        "dm",
        "auth/token",
        "tokens",
        "bots",
        "search",
        "schema",
        "docs",
    }
    assert response.json()["rooms"] == "http://testserver/api/rooms/"
    assert response.json()["schema"] == "http://testserver/api/schema/"
    assert response.json()["docs"] == "http://testserver/api/docs/"


# Issue 13: the API's documentation is public (like Zulip's and Slack's), read-only.
PUBLIC_ROUTES = ["/api/schema/", "/api/schema/?format=json", "/api/docs/", "/api/redoc/"]


@pytest.mark.parametrize("url", PUBLIC_ROUTES)
def test_anonymous_reads_the_api_documentation(anon, url):
    assert anon.get(url).status_code == 200


@pytest.mark.parametrize("url", PUBLIC_ROUTES)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_api_documentation_is_read_only(as_alice, url, method):
    response = getattr(as_alice, method)(url, {}, format="json")

    assert response.status_code == 405


def test_anonymous_caller_may_ask_for_a_token(anon, alice, password):
    response = anon.post(
        "/api/auth/token/", {"username": "alice", "password": password}, format="json"
    )

    assert response.status_code == 200
