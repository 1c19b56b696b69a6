"""GET /api/search/: the same search as the page (apps/chat/search.py), as JSON: results with
plain snippets and highlight offsets, keyset ``next`` links, 400 for a bad query, 404 for a room
you cannot see, 401 without credentials."""

import pytest

from apps.api.testing import error_of
from apps.chat import services
from apps.chat.models import Message

pytestmark = pytest.mark.django_db


def test_results_carry_the_message_its_snippet_and_a_link_to_it(as_alice, public_room, alice):
    message = services.message_send(
        room=public_room, author=alice, body="Привет, <b>мир</b>"
    ).message

    response = as_alice.get("/api/search/", {"q": "ПРИВЕТ"})

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    [hit] = body["results"]
    assert hit["id"] == message.pk and hit["room"] == public_room.pk and hit["seq"] == message.seq
    assert hit["author"]["id"] == alice.pk and hit["author"]["username"] == "alice"
    assert hit["author"]["name"] == "Alice"
    assert hit["snippet"] == "Привет, <b>мир</b>"  # plain text: the client escapes it
    assert hit["highlights"] == [[0, 6]]
    assert hit["url"] == (
        f"http://testserver/chat/room/{public_room.pk}/?around={message.seq}#message-{message.pk}"
    )
    assert hit["created_at"].startswith(str(message.created_at.year))


def test_next_links_page_through_without_repeats(as_alice, public_room, alice, settings, unlimited):
    settings.PARLEY_SEARCH_PAGE_SIZE = 3
    for i in range(8):
        services.message_send(room=public_room, author=alice, body=f"entry {i}")
    seen, url = [], "/api/search/?q=entry"
    while url:
        body = as_alice.get(url).json()
        seen += [hit["snippet"] for hit in body["results"]]
        url = body["next"]
        assert url is None or "before=" in url
    assert seen == [f"entry {i}" for i in reversed(range(8))]


def test_room_restricts_and_an_invisible_room_is_404(
    as_alice, as_carol, public_room, private_room, alice
):
    services.message_send(room=public_room, author=alice, body="hello all")
    services.message_send(room=private_room, author=alice, body="hello bob")

    mine = as_alice.get("/api/search/", {"q": "hello", "room": private_room.pk}).json()
    assert [hit["snippet"] for hit in mine["results"]] == ["hello bob"]
    hidden = as_carol.get("/api/search/", {"q": "hello", "room": private_room.pk})
    missing = as_carol.get("/api/search/", {"q": "hello", "room": 999_999})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    everywhere = as_carol.get("/api/search/", {"q": "hello"}).json()
    assert [hit["snippet"] for hit in everywhere["results"]] == ["hello all"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "  "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "has:image"}, "q"),
        ({"q": "x", "before": "garbage"}, "before"),
        ({"q": "x", "room": "abc"}, "room"),
        ({"q": "x", "room": "-1"}, "room"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(as_alice, params, field):
    response = as_alice.get("/api/search/", params)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(error_of(response)["fields"]) == [field]


def test_anonymous_is_401(anon):
    response = anon.get("/api/search/", {"q": "x"})
    assert response.status_code == 401


def test_rate_limited_is_429(as_alice, settings, frozen_clock):
    settings.PARLEY_SEARCH_RATE = (1, 10)
    assert as_alice.get("/api/search/", {"q": "x"}).status_code == 200
    response = as_alice.get("/api/search/", {"q": "x"})
    assert response.status_code == 429
    assert "Retry-After" in response


def test_deleted_and_files_only_messages(as_alice, public_room, alice):
    gone = services.message_send(room=public_room, author=alice, body="oops secret").message
    services.message_delete(room=public_room, user=alice, message_id=gone.pk)
    kept = services.message_send(room=public_room, author=alice, body="report secret").message
    Message.objects.filter(pk=kept.pk).update(has_attachments=True)

    body = as_alice.get("/api/search/", {"q": "secret has:file"}).json()
    assert [hit["id"] for hit in body["results"]] == [kept.pk]
    assert as_alice.get("/api/search/", {"q": "oops"}).json()["results"] == []


def test_query_count_per_page_is_constant(
    as_alice, public_room, private_room, alice, bob, unlimited, django_assert_num_queries
):
    for i in range(30):
        services.message_send(room=public_room, author=[alice, bob][i % 2], body=f"find {i}")
        services.message_send(room=private_room, author=bob, body=f"find dm {i}")
    # token + user, then the search: messages with authors, profiles and rooms, and the
    # conversation's participants
    with django_assert_num_queries(3):
        response = as_alice.get("/api/search/", {"q": "find"})
    assert len(response.json()["results"]) == 20
