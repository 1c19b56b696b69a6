"""/api/rooms/<pk>/messages/: keyset-paginated history, the sync feed (``?after=`` by version)
and sending through message_send."""

import uuid

import pytest

from apps.api.testing import error_of
from apps.chat import services
from apps.chat.models import Message, Room


def _url(room, query=""):
    return f"/api/rooms/{room.pk}/messages/{query}"


def _seqs(response):
    return [message["seq"] for message in response.json()["results"]]


# --- Reading -----------------------------------------------------------------------------------


def _ids(response):
    return [message["id"] for message in response.json()["results"]]


def test_message_objects_carry_id_room_seq_version_author_body_html_and_times(
    as_carol, public_room, alice
):
    client_id = uuid.uuid4()
    message = services.message_send(
        room=public_room, author=alice, body="hello", client_id=client_id
    ).message

    [item] = as_carol.get(_url(public_room)).json()["results"]

    assert item == {
        "id": message.pk,
        "room": public_room.pk,
        "seq": 1,
        "author": {
            "id": alice.pk,
            "username": "alice",
            "display_name": "Alice",
            "name": "Alice",
            "avatar": None,
            "is_bot": False,
        },
        "body": "hello",
        "html": "<p>hello</p>",
        "client_id": str(client_id),
        "created_at": item["created_at"],
        "version": 1,
        "edited_at": None,
        "deleted": False,
        "reply_to": None,
        "reactions": [],
        "mentions": [],
        "attachments": [],
    }
    assert item["created_at"].startswith(str(message.created_at.year))


def test_default_page_is_the_newest_messages_oldest_first(as_alice, public_room, alice, send):
    for n in range(7):
        send(public_room, alice, f"m{n}")

    response = as_alice.get(_url(public_room, "?limit=3"))

    assert response.status_code == 200
    assert _seqs(response) == [5, 6, 7]
    assert response.json()["newer"] is None


def test_older_and_newer_links_walk_the_whole_history(as_alice, public_room, alice, send):
    for n in range(7):
        send(public_room, alice, f"m{n}")

    newest = as_alice.get(_url(public_room, "?limit=3")).json()
    middle = as_alice.get(newest["older"]).json()
    oldest = as_alice.get(middle["older"]).json()
    forward = as_alice.get(middle["newer"]).json()

    assert [m["seq"] for m in middle["results"]] == [2, 3, 4]
    assert [m["seq"] for m in oldest["results"]] == [1]
    assert oldest["older"] is None
    assert [m["seq"] for m in forward["results"]] == [5, 6, 7]
    assert forward["newer"] is None
    assert "limit=3" in newest["older"]


def test_pages_do_not_shift_when_new_messages_arrive(as_alice, public_room, alice, send):
    for n in range(5):
        send(public_room, alice, f"m{n}")
    older_link = as_alice.get(_url(public_room, "?limit=2")).json()["older"]

    send(public_room, alice, "late arrival")

    assert _seqs(as_alice.get(older_link)) == [2, 3]


def test_after_returns_only_newer_messages_for_catch_up(as_alice, public_room, alice, send):
    for n in range(4):
        send(public_room, alice, f"m{n}")

    response = as_alice.get(_url(public_room, "?after=2"))

    assert _seqs(response) == [3, 4]
    assert response.json()["newer"] is None
    assert _seqs(as_alice.get(_url(public_room, "?after=4"))) == []


def test_empty_room_has_an_empty_page_and_no_links(as_alice, public_room):
    response = as_alice.get(_url(public_room))

    assert response.json() == {"results": [], "older": None, "newer": None}


@pytest.mark.parametrize(
    "query",
    [
        "?before=abc",
        "?before=-1",
        "?after=1.5",
        f"?before={2**64}",
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?before=3&after=1",
        "?before=%00",
    ],
)
def test_bad_paging_parameters_give_400_json(as_alice, public_room, query):
    response = as_alice.get(_url(public_room, query))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


def test_each_page_costs_the_same_queries_whatever_its_size(
    as_alice, public_room, make_user, send, django_assert_num_queries
):
    authors = [make_user(display_name=f"Author {n}") for n in range(10)]

    def add(count):
        # Replies, reactions by several people, edits and deletes: everything a page shows.
        for n in range(count):
            author = authors[n % 10]
            earlier = public_room.messages.filter(deleted_at=None).order_by("-seq").first()
            message = services.message_send(
                room=public_room, author=author, body=f"m{n}", reply_to=earlier and earlier.pk
            ).message
            for reactor in authors[: n % 4]:
                services.reaction_add(
                    room=public_room, user=reactor, message_id=message.pk, emoji="👍"
                )
            if n % 5 == 1:
                services.message_edit(
                    room=public_room, user=author, message_id=message.pk, body="edited"
                )
            if n % 7 == 3:
                services.message_delete(room=public_room, user=author, message_id=message.pk)

    add(3)
    version = public_room.messages.order_by("version")[1].version
    # token → user, the room (access rule), the page with authors, profiles and replies
    # joined, its reactions with who reacted.
    with django_assert_num_queries(4):
        small = as_alice.get(_url(public_room))
    with django_assert_num_queries(4):
        small_sync = as_alice.get(_url(public_room, f"?after={version}"))

    add(40)
    with django_assert_num_queries(4):
        large = as_alice.get(_url(public_room))
    with django_assert_num_queries(4):
        large_sync = as_alice.get(_url(public_room, f"?after={version}"))

    assert len(small.json()["results"]) == 3
    assert len(large.json()["results"]) == 43
    assert len(small_sync.json()["results"]) < len(large_sync.json()["results"])
    assert (
        len(large_sync.json()["results"])
        == public_room.messages.filter(version__gt=version).count()
    )
    results = large.json()["results"]
    assert {m["author"]["name"] for m in results} == {f"Author {n}" for n in range(10)}
    assert sum(r["count"] for m in results for r in m["reactions"]) > 0
    assert any(m["reply_to"] for m in results) and any(m["deleted"] for m in results)


# --- Syncing: ?after=<version> -------------------------------------------------------------------


def _timeline(room, alice, bob):
    """m1..m3, then: m1 edited (v4), m2 reacted to (v5), m3 deleted (v6), m4 sent (seq 7)."""
    m1, m2, m3 = (
        services.message_send(room=room, author=alice, body=f"m{n}").message for n in (1, 2, 3)
    )
    services.message_edit(room=room, user=alice, message_id=m1.pk, body="m1 edited")
    services.reaction_add(room=room, user=bob, message_id=m2.pk, emoji="👍")
    services.message_delete(room=room, user=alice, message_id=m3.pk)
    m4 = services.message_send(room=room, author=bob, body="m4").message
    return m1, m2, m3, m4


def test_after_returns_every_message_changed_since_in_version_order_with_tombstones(
    as_bob, public_room, alice, bob
):
    m1, m2, m3, m4 = _timeline(public_room, alice, bob)

    response = as_bob.get(_url(public_room, "?after=3"))

    results = response.json()["results"]
    assert _ids(response) == [m1.pk, m2.pk, m3.pk, m4.pk]
    assert [m["version"] for m in results] == [4, 5, 6, 7]
    assert [m["seq"] for m in results] == [1, 2, 3, 7]
    assert results[0]["body"] == "m1 edited" and results[0]["edited_at"] is not None
    assert results[1]["reactions"] == [{"emoji": "👍", "count": 1, "users": [bob.pk], "me": True}]
    assert (results[2]["deleted"], results[2]["body"], results[2]["html"]) == (True, "", "")
    assert response.json()["newer"] is None
    assert response.json()["older"] is None
    assert _ids(as_bob.get(_url(public_room, "?after=5"))) == [m3.pk, m4.pk]
    assert _ids(as_bob.get(_url(public_room, "?after=7"))) == []


def test_after_zero_is_the_whole_room_each_message_once(as_bob, public_room, alice, bob):
    m1, m2, m3, m4 = _timeline(public_room, alice, bob)

    response = as_bob.get(_url(public_room, "?after=0"))

    assert _ids(response) == [m1.pk, m2.pk, m3.pk, m4.pk]


def test_newer_links_follow_versions_until_the_rooms_last_seq(as_bob, public_room, alice, bob):
    m1, m2, m3, m4 = _timeline(public_room, alice, bob)

    first = as_bob.get(_url(public_room, "?after=3&limit=2")).json()
    second = as_bob.get(first["newer"]).json()

    assert [m["id"] for m in first["results"]] == [m1.pk, m2.pk]
    assert "after=5" in first["newer"] and "limit=2" in first["newer"]
    assert [m["id"] for m in second["results"]] == [m3.pk, m4.pk]
    assert second["newer"] is None


def test_default_and_before_pages_stay_in_seq_order_whatever_was_edited(
    as_bob, public_room, alice, bob
):
    m1, m2, m3, m4 = _timeline(public_room, alice, bob)

    newest = as_bob.get(_url(public_room, "?limit=2")).json()
    older = as_bob.get(newest["older"]).json()

    assert [m["id"] for m in newest["results"]] == [m3.pk, m4.pk]
    assert newest["newer"] is None  # the newest page is the present
    assert "before=3" in newest["older"]
    assert [m["id"] for m in older["results"]] == [m1.pk, m2.pk]
    assert older["older"] is None
    # Forward from an older page: everything after its last seq, by version, which includes
    # the newer messages and every later change (here m1's edit, m2's reaction, m3's delete).
    assert "after=2" in older["newer"]
    forward, url = [], older["newer"]
    while url:
        page = as_bob.get(url).json()
        forward += [m["id"] for m in page["results"]]
        url = page["newer"]
    assert forward == [m1.pk, m2.pk, m3.pk, m4.pk]


def test_the_readme_sync_recipe_ends_with_the_state_a_fresh_read_shows(
    as_bob, public_room, alice, bob, carol
):
    """Keep the highest version seen, ask ?after= it, follow newer, replace messages by id."""
    m1, m2, m3, m4 = _timeline(public_room, alice, bob)
    held = {m["id"]: m for m in as_bob.get(_url(public_room)).json()["results"]}
    cursor = max(m["version"] for m in held.values())

    # While the client is away: edits, deletes, reactions, replies and new messages.
    services.message_edit(room=public_room, user=alice, message_id=m1.pk, body="m1 again")
    services.reaction_add(room=public_room, user=carol, message_id=m4.pk, emoji="🎉")
    services.reaction_add(room=public_room, user=bob, message_id=m4.pk, emoji="🎉")
    services.reaction_remove(room=public_room, user=bob, message_id=m2.pk, emoji="👍")
    for n in range(5):
        services.message_send(room=public_room, author=carol, body=f"new {n}", reply_to=m4.pk)
    services.message_delete(room=public_room, user=bob, message_id=m4.pk)

    url = _url(public_room, f"?after={cursor}&limit=3")
    pages = 0
    while url:
        page = as_bob.get(url).json()
        for message in page["results"]:
            assert message["version"] > cursor
            held[message["id"]] = message
        cursor = max([cursor, *(m["version"] for m in page["results"])])
        url = page["newer"]
        pages += 1

    fresh = {m["id"]: m for m in as_bob.get(_url(public_room, "?limit=100")).json()["results"]}
    assert held == fresh
    assert cursor == Room.objects.get(pk=public_room.pk).last_seq
    assert pages > 1


# --- Sending -----------------------------------------------------------------------------------


def test_posted_message_gets_the_next_seq_and_the_authenticated_author(
    as_alice, public_room, alice, bob, send
):
    send(public_room, bob, "first")
    other_room = services.room_create(name="elsewhere", creator=bob)

    response = as_alice.post(
        _url(public_room),
        {
            "body": "  second  ",
            "author": bob.pk,
            "author_id": bob.pk,
            "room": other_room.pk,
            "seq": 99,
            "id": 12345,
        },
        format="json",
    )

    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.room_id, message.seq, message.author_id) == (public_room.pk, 2, alice.pk)
    assert message.body == "second"
    assert response.json()["author"]["id"] == alice.pk
    assert response.json()["seq"] == 2
    assert Room.objects.get(pk=public_room.pk).last_seq == 2
    assert not other_room.messages.exists()


def test_same_client_id_twice_stores_one_message_201_then_200(as_alice, public_room):
    payload = {"body": "once", "client_id": str(uuid.uuid4())}

    first = as_alice.post(_url(public_room), payload, format="json")
    retry = as_alice.post(_url(public_room), payload, format="json")

    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json() == retry.json()
    assert Message.objects.count() == 1


def test_reusing_a_client_id_in_another_room_is_a_client_id_error(as_alice, public_room, alice):
    other = services.room_create(name="other", creator=alice)
    payload = {"body": "hi", "client_id": str(uuid.uuid4())}
    as_alice.post(_url(public_room), payload, format="json")

    response = as_alice.post(_url(other), payload, format="json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["client_id"]
    assert not other.messages.exists()


@pytest.mark.parametrize("client_id", [None, ""])
def test_empty_client_id_means_none(as_alice, public_room, client_id):
    response = as_alice.post(
        _url(public_room), {"body": "hi", "client_id": client_id}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["client_id"] is None


def test_message_can_be_sent_as_a_form_post(as_alice, public_room):
    response = as_alice.post(_url(public_room), {"body": "from a form"})

    assert response.status_code == 201
    assert Message.objects.get().body == "from a form"


def test_4000_characters_is_the_longest_message(as_alice, public_room):
    response = as_alice.post(_url(public_room), {"body": "x" * 4000}, format="json")

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": ""}, "body"),
        ({"body": "   \n "}, "body"),
        ({"body": "x" * 4001}, "body"),
        ({"body": 123}, "body"),
        ({"body": ["a", "list"]}, "body"),
        ({"body": {"an": "object"}}, "body"),
        ({"body": None}, "body"),
        ({"body": True}, "body"),
        ({"body": "nul \x00 inside"}, "body"),
        ({}, "body"),
        ({"body": "hi", "client_id": "not-a-uuid"}, "client_id"),
        ({"body": "hi", "client_id": 42}, "client_id"),
    ],
)
def test_invalid_message_gives_400_json_on_the_field_and_writes_nothing(
    as_alice, public_room, payload, field
):
    response = as_alice.post(_url(public_room), payload, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(error_of(response)["fields"]) == [field]
    assert error_of(response)["message"].startswith(f"{field}: ")
    assert Message.objects.count() == 0
    assert Room.objects.get(pk=public_room.pk).last_seq == 0


def test_lone_surrogate_in_body_gives_400_not_a_database_error(as_alice, public_room):
    # JSON may spell a lone surrogate (\\ud800); no database can store it as UTF-8.
    raw = b'{"body": "lone \\ud800 surrogate"}'

    response = as_alice.generic("POST", _url(public_room), raw, content_type="application/json")

    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["body"]
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"body": "unterminated',
        b"not json at all",
        b"[" * 100_000 + b"]" * 100_000,
        b"[1, 2]",
        b'"just a string"',
        b"\xff\xfe",
    ],
)
def test_malformed_or_non_object_json_gives_400_json_and_writes_nothing(as_alice, public_room, raw):
    response = as_alice.generic("POST", _url(public_room), raw, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert Message.objects.count() == 0


def test_json_body_over_the_upload_limit_gives_413(as_alice, public_room, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = as_alice.post(_url(public_room), {"body": "x" * 2000}, format="json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert Message.objects.count() == 0


def test_unsupported_content_type_gives_415_json(as_alice, public_room):
    response = as_alice.generic("POST", _url(public_room), b"body=hi", content_type="text/plain")

    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"


def test_sending_too_fast_gives_429_with_retry_after(as_alice, public_room, settings, frozen_clock):
    settings.PARLEY_MESSAGE_RATE = (2, 60)
    for n in range(2):
        assert as_alice.post(_url(public_room), {"body": f"m{n}"}, format="json").status_code == 201

    response = as_alice.post(_url(public_room), {"body": "one too many"}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert error_of(response)["fields"] == {}
    assert Message.objects.count() == 2


def test_idempotent_retry_is_answered_even_when_rate_limited(as_alice, public_room, settings):
    settings.PARLEY_MESSAGE_RATE = (1, 60)
    payload = {"body": "once", "client_id": str(uuid.uuid4())}
    first = as_alice.post(_url(public_room), payload, format="json")

    retry = as_alice.post(_url(public_room), payload, format="json")

    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json()["id"] == first.json()["id"]


def test_sending_into_a_room_deleted_mid_request_is_404(as_alice, public_room, monkeypatch):
    """The room is deleted between the view's lookup and the service's write: 404, not 500."""
    from apps.chat import selectors

    original = selectors.room_access

    def then_gone(*, room, user, **kwargs):
        access = original(room=room, user=user, **kwargs)
        Room.objects.filter(pk=room.pk).delete()
        return access

    monkeypatch.setattr(selectors, "room_access", then_gone)
    response = as_alice.post(_url(public_room), {"body": "too late"}, format="json")
    assert response.status_code == 404
    assert not Message.objects.exists()
