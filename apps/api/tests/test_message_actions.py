"""One message: GET, PATCH (edit), DELETE, reactions and replies — every action through its
service, for every kind of caller (author / room owner / other member / outsider of a private
room / anonymous), and bad input that answers 4xx JSON and writes nothing."""

import urllib.parse

import pytest

from apps.api.testing import error_of, inputs_of
from apps.chat import errors, services
from apps.chat.models import Message, Reaction, Room

THUMBS = "👍"
HEART = "❤️"  # two code points (U+2764 U+FE0F): the path must carry both


def _url(message, tail=""):
    return f"/api/rooms/{message.room_id}/messages/{message.pk}/{tail}"


def _reaction_url(message, emoji):
    return _url(message, f"reactions/{urllib.parse.quote(emoji, safe='')}/")


def _call(client, method, url, payload=None):
    if payload is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, payload, format="json")


def _state(message):
    """Everything an action could change: the message row, its reactions, the room's seq."""
    row = Message.objects.get(pk=message.pk)
    return {
        "body": row.body,
        "html": row.html,
        "version": row.version,
        "edited_at": row.edited_at,
        "deleted_at": row.deleted_at,
        "reply_to": row.reply_to_id,
        "reactions": sorted(row.reactions.values_list("user_id", "emoji")),
        "last_seq": Room.objects.get(pk=row.room_id).last_seq,
    }


def _assert_detail_error(response, status):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert error_of(response)["fields"] == {}


@pytest.fixture
def bobs_message(public_room, bob, send):
    """Bob's message in the public room, which Alice owns (she created it); Carol is another
    member (every signed-in user may use a public room)."""
    return send(public_room, bob, "original **text**")


@pytest.fixture
def secret(private_room, alice, send):
    """Alice's message in her private room with Bob: Carol is the outsider."""
    message = send(private_room, alice, "secret")
    services.reaction_add(room=private_room, user=alice, message_id=message.pk, emoji=THUMBS)
    return message


@pytest.fixture
def callers(as_bob, as_alice, as_carol, anon):
    return {"author": as_bob, "owner": as_alice, "member": as_carol, "anonymous": anon}


# --- GET one message ---------------------------------------------------------------------------


def test_a_message_can_be_read_on_its_own(as_carol, bobs_message, bob):
    response = as_carol.get(_url(bobs_message))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["seq"], body["version"], body["author"]["id"]) == (
        bobs_message.pk,
        1,
        1,
        bob.pk,
    )
    assert body["body"] == "original **text**"
    assert "<strong>text</strong>" in body["html"]
    assert (body["deleted"], body["edited_at"], body["reply_to"], body["reactions"]) == (
        False,
        None,
        None,
        [],
    )


def test_a_message_is_not_found_through_another_rooms_url(as_alice, alice, bobs_message):
    other = services.room_create(name="other", creator=alice)

    response = as_alice.get(f"/api/rooms/{other.pk}/messages/{bobs_message.pk}/")

    assert response.status_code == 404
    assert error_of(response)["message"] == errors.describe(errors.MessageNotFound())


@pytest.mark.parametrize("pk", ["999999", str(2**63), "9" * 30, "0"])
def test_unknown_or_out_of_range_message_ids_are_json_404(as_alice, public_room, pk):
    for method in ("get", "patch", "delete"):
        url = f"/api/rooms/{public_room.pk}/messages/{pk}/"
        response = _call(as_alice, method, url, {"body": "x"} if method == "patch" else None)

        assert response.status_code == 404, method
        assert response["Content-Type"] == "application/json"


# --- Access: every action × every kind of caller ------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "status"),
    [("author", 200), ("owner", 403), ("member", 403), ("anonymous", 401)],
)
def test_only_the_author_may_edit(callers, bobs_message, caller, status):
    before = _state(bobs_message)

    response = callers[caller].patch(_url(bobs_message), {"body": "changed _now_"}, format="json")

    assert response.status_code == status
    after = _state(bobs_message)
    if status == 200:
        assert response.json()["body"] == "changed _now_"
        assert "<em>now</em>" in response.json()["html"]
        assert response.json()["edited_at"] is not None
        assert response.json()["version"] == after["version"] == before["last_seq"] + 1
        assert response.json()["seq"] == 1
        assert (after["body"], after["last_seq"]) == ("changed _now_", before["last_seq"] + 1)
        assert response.json() == callers["member"].get(_url(bobs_message)).json()
    else:
        _assert_detail_error(response, status)
        assert after == before


@pytest.mark.parametrize(
    ("caller", "status"),
    [("author", 204), ("owner", 204), ("member", 403), ("anonymous", 401)],
)
def test_the_author_or_the_room_owner_may_delete(callers, bobs_message, carol, caller, status):
    services.reaction_add(
        room=bobs_message.room, user=carol, message_id=bobs_message.pk, emoji=THUMBS
    )
    before = _state(bobs_message)

    response = callers[caller].delete(_url(bobs_message))

    assert response.status_code == status
    after = _state(bobs_message)
    if status == 204:
        assert response.content == b""
        assert after["deleted_at"] is not None
        assert (after["body"], after["html"], after["reactions"]) == ("", "", [])
        assert after["version"] == after["last_seq"] == before["last_seq"] + 1
        tombstone = callers["member"].get(_url(bobs_message)).json()
        assert (tombstone["deleted"], tombstone["body"], tombstone["html"]) == (True, "", "")
        assert tombstone["reactions"] == []
    else:
        _assert_detail_error(response, status)
        assert after == before


@pytest.mark.parametrize(
    ("caller", "status"),
    [("author", 201), ("owner", 201), ("member", 201), ("anonymous", 401)],
)
def test_anyone_in_the_room_may_react(callers, bobs_message, bob, alice, carol, caller, status):
    user = {"author": bob, "owner": alice, "member": carol}.get(caller)
    before = _state(bobs_message)

    response = callers[caller].post(
        _url(bobs_message, "reactions/"), {"emoji": THUMBS}, format="json"
    )

    assert response.status_code == status
    after = _state(bobs_message)
    if status == 201:
        assert response.json()["reactions"] == [
            {"emoji": THUMBS, "count": 1, "users": [user.pk], "me": True}
        ]
        assert after["reactions"] == [(user.pk, THUMBS)]
        assert after["version"] == after["last_seq"] == before["last_seq"] + 1
    else:
        _assert_detail_error(response, status)
        assert after == before


@pytest.mark.parametrize("caller", ["author", "owner", "member"])
def test_each_caller_takes_back_only_their_own_reaction(
    callers, bobs_message, bob, alice, carol, caller
):
    for user in (bob, alice, carol):
        services.reaction_add(
            room=bobs_message.room, user=user, message_id=bobs_message.pk, emoji=THUMBS
        )
    user = {"author": bob, "owner": alice, "member": carol}[caller]
    before = _state(bobs_message)

    response = callers[caller].delete(_reaction_url(bobs_message, THUMBS))

    assert response.status_code == 204
    after = _state(bobs_message)
    assert after["reactions"] == sorted(
        (other.pk, THUMBS) for other in (bob, alice, carol) if other != user
    )
    assert after["version"] == after["last_seq"] == before["last_seq"] + 1


def test_anonymous_cannot_take_back_a_reaction(anon, bobs_message, bob):
    services.reaction_add(
        room=bobs_message.room, user=bob, message_id=bobs_message.pk, emoji=THUMBS
    )
    before = _state(bobs_message)

    response = anon.delete(_reaction_url(bobs_message, THUMBS))

    _assert_detail_error(response, 401)
    assert _state(bobs_message) == before


OUTSIDER_ACTIONS = [
    ("get", "", None),
    ("patch", "", {"body": "mine now"}),
    ("delete", "", None),
    ("post", "reactions/", {"emoji": THUMBS}),
    ("delete", "reactions/%F0%9F%91%8D/", None),
]


@pytest.mark.parametrize(("method", "tail", "payload"), OUTSIDER_ACTIONS)
def test_an_outsider_of_a_private_room_gets_404_and_changes_nothing(
    as_carol, secret, method, tail, payload
):
    before = _state(secret)

    hidden = _call(as_carol, method, _url(secret, tail), payload)
    missing_room = _call(
        as_carol, method, f"/api/rooms/{secret.room_id + 1000}/messages/{secret.pk}/{tail}", payload
    )

    assert hidden.status_code == missing_room.status_code == 404
    assert hidden.json() == missing_room.json()
    assert error_of(hidden)["message"] == errors.describe(errors.RoomNotFound())
    assert b"secret" not in hidden.content
    assert _state(secret) == before


def test_in_a_one_to_one_conversation_nobody_may_edit_or_delete_the_others_message(as_bob, secret):
    before = _state(secret)

    edit = as_bob.patch(_url(secret), {"body": "bob was here"}, format="json")
    delete = as_bob.delete(_url(secret))

    _assert_detail_error(edit, 403)
    _assert_detail_error(delete, 403)
    assert _state(secret) == before


# --- Edit: bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"body": ""},
        {"body": "   \n "},
        {"body": "x" * 4001},
        {"body": 123},
        {"body": None},
        {"body": ["a", "list"]},
        {"body": {"an": "object"}},
        {"body": "nul \x00 inside"},
        {"body": "direction \u202e override"},
        {},
    ],
)
def test_a_bad_edit_is_400_on_body_and_changes_nothing(as_bob, bobs_message, payload):
    before = _state(bobs_message)

    response = as_bob.patch(_url(bobs_message), payload, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(error_of(response)["fields"]) == ["body"]
    assert error_of(response)["message"].startswith("body: ")
    assert _state(bobs_message) == before


def test_an_edit_may_have_4000_characters(as_bob, bobs_message):
    response = as_bob.patch(_url(bobs_message), {"body": "y" * 4000}, format="json")

    assert response.status_code == 200
    assert Message.objects.get(pk=bobs_message.pk).body == "y" * 4000


def test_a_deleted_message_cannot_be_edited(as_bob, bobs_message, bob):
    services.message_delete(room=bobs_message.room, user=bob, message_id=bobs_message.pk)
    before = _state(bobs_message)

    response = as_bob.patch(_url(bobs_message), {"body": "resurrected"}, format="json")

    _assert_detail_error(response, 400)
    assert _state(bobs_message) == before


def test_editing_too_fast_is_429_with_retry_after(as_bob, bobs_message, settings):
    settings.PARLEY_MESSAGE_RATE = (1, 60)
    assert as_bob.patch(_url(bobs_message), {"body": "one"}, format="json").status_code == 200
    before = _state(bobs_message)

    response = as_bob.patch(_url(bobs_message), {"body": "two"}, format="json")

    _assert_detail_error(response, 429)
    assert int(response["Retry-After"]) > 0
    assert _state(bobs_message) == before


def test_an_edit_reaches_the_replies_quote_in_the_sync_feed(as_bob, bobs_message, alice, send):
    reply = services.message_send(
        room=bobs_message.room, author=alice, body="answer", reply_to=bobs_message.pk
    ).message
    after = Room.objects.get(pk=bobs_message.room_id).last_seq

    as_bob.patch(_url(bobs_message), {"body": "corrected"}, format="json")
    feed = as_bob.get(f"/api/rooms/{bobs_message.room_id}/messages/?after={after}").json()

    assert [m["id"] for m in feed["results"]] == [bobs_message.pk, reply.pk]
    assert [m["version"] for m in feed["results"]] == [after + 1, after + 2]
    assert feed["results"][1]["reply_to"] == bobs_message.pk


# --- Delete ------------------------------------------------------------------------------------


def test_deleting_a_deleted_message_is_204_and_changes_nothing(as_bob, bobs_message, bob):
    services.message_delete(room=bobs_message.room, user=bob, message_id=bobs_message.pk)
    before = _state(bobs_message)

    response = as_bob.delete(_url(bobs_message))

    assert response.status_code == 204
    assert _state(bobs_message) == before


def test_deleting_an_unknown_message_is_404(as_alice, public_room):
    response = as_alice.delete(f"/api/rooms/{public_room.pk}/messages/4242/")

    assert error_of(response)["message"] == errors.describe(errors.MessageNotFound())
    assert response.status_code == 404
    assert Room.objects.get(pk=public_room.pk).last_seq == 0


# --- Reactions ---------------------------------------------------------------------------------


def test_reacting_twice_is_200_with_the_same_single_reaction(as_carol, bobs_message, carol):
    first = as_carol.post(_url(bobs_message, "reactions/"), {"emoji": THUMBS}, format="json")
    before = _state(bobs_message)

    again = as_carol.post(_url(bobs_message, "reactions/"), {"emoji": THUMBS}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert _state(bobs_message) == before  # no new version, no second row


def test_reactions_show_counts_users_and_whether_you_reacted(
    as_alice, as_carol, bobs_message, bob, carol
):
    for user, emoji in [(bob, THUMBS), (carol, HEART), (carol, THUMBS)]:
        services.reaction_add(
            room=bobs_message.room, user=user, message_id=bobs_message.pk, emoji=emoji
        )

    seen_by_carol = as_carol.get(_url(bobs_message)).json()["reactions"]
    seen_by_alice = as_alice.get(_url(bobs_message)).json()["reactions"]

    assert seen_by_carol == [
        {"emoji": THUMBS, "count": 2, "users": [bob.pk, carol.pk], "me": True},
        {"emoji": HEART, "count": 1, "users": [carol.pk], "me": True},
    ]
    assert [r["me"] for r in seen_by_alice] == [False, False]


def test_an_emoji_of_two_code_points_works_through_the_path(as_carol, bobs_message):
    assert (
        as_carol.post(_url(bobs_message, "reactions/"), {"emoji": HEART}, format="json").status_code
        == 201
    )

    response = as_carol.delete(_reaction_url(bobs_message, HEART))

    assert response.status_code == 204
    assert not Reaction.objects.exists()


def test_taking_back_a_reaction_you_had_not_made_is_404_and_changes_nothing(
    as_carol, bobs_message, bob
):
    services.reaction_add(
        room=bobs_message.room, user=bob, message_id=bobs_message.pk, emoji=THUMBS
    )
    before = _state(bobs_message)

    response = as_carol.delete(_reaction_url(bobs_message, THUMBS))

    _assert_detail_error(response, 404)
    assert response.json() != {"detail": errors.describe(errors.MessageNotFound())}
    assert _state(bobs_message) == before


@pytest.mark.parametrize(
    "payload",
    [
        {"emoji": "not an emoji"},
        {"emoji": "x"},
        {"emoji": ""},
        {"emoji": f"{THUMBS} "},
        {"emoji": THUMBS * 2},
        {"emoji": "🦜" * 10_000},
        {"emoji": "<script>"},
        {"emoji": 1},
        {"emoji": True},
        {"emoji": None},
        {"emoji": [THUMBS]},
        {"emoji": {"emoji": THUMBS}},
        {"emoji": "nul \x00"},
        {},
    ],
)
def test_a_bad_emoji_is_400_on_emoji_and_writes_nothing(as_carol, bobs_message, payload):
    before = _state(bobs_message)

    response = as_carol.post(_url(bobs_message, "reactions/"), payload, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(error_of(response)["fields"]) == ["emoji"]
    assert _state(bobs_message) == before


@pytest.mark.parametrize("emoji", ["nope", THUMBS * 2, "x" * 3000, "\x00", "%"])
def test_a_path_emoji_not_in_the_list_is_400_on_emoji(as_carol, bobs_message, carol, emoji):
    services.reaction_add(
        room=bobs_message.room, user=carol, message_id=bobs_message.pk, emoji=THUMBS
    )
    before = _state(bobs_message)

    response = as_carol.delete(_reaction_url(bobs_message, emoji))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert list(error_of(response)["fields"]) == ["emoji"]
    assert _state(bobs_message) == before


def test_a_deleted_message_takes_no_reactions(as_carol, bobs_message, bob):
    services.message_delete(room=bobs_message.room, user=bob, message_id=bobs_message.pk)
    before = _state(bobs_message)

    response = as_carol.post(_url(bobs_message, "reactions/"), {"emoji": THUMBS}, format="json")

    _assert_detail_error(response, 400)
    assert _state(bobs_message) == before


def test_reacting_to_an_unknown_message_is_404(as_carol, public_room):
    response = as_carol.post(
        f"/api/rooms/{public_room.pk}/messages/4242/reactions/", {"emoji": THUMBS}, format="json"
    )

    assert response.status_code == 404
    assert error_of(response)["message"] == errors.describe(errors.MessageNotFound())
    assert not Reaction.objects.exists()


def test_reacting_too_fast_is_429_with_retry_after(as_carol, bobs_message, settings):
    settings.PARLEY_REACTION_RATE = (1, 60)
    url = _url(bobs_message, "reactions/")
    assert as_carol.post(url, {"emoji": THUMBS}, format="json").status_code == 201
    before = _state(bobs_message)

    response = as_carol.post(url, {"emoji": HEART}, format="json")

    _assert_detail_error(response, 429)
    assert int(response["Retry-After"]) > 0
    assert _state(bobs_message) == before


# --- Replies -----------------------------------------------------------------------------------


def test_a_reply_names_the_message_it_answers(as_carol, bobs_message):
    response = as_carol.post(
        f"/api/rooms/{bobs_message.room_id}/messages/",
        {"body": "indeed", "reply_to": bobs_message.pk},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["reply_to"] == bobs_message.pk
    assert Message.objects.get(pk=response.json()["id"]).reply_to_id == bobs_message.pk


def test_a_reply_can_be_sent_as_a_form_post(as_carol, bobs_message):
    response = as_carol.post(
        f"/api/rooms/{bobs_message.room_id}/messages/",
        {"body": "from a form", "reply_to": str(bobs_message.pk)},
    )

    assert response.status_code == 201
    assert response.json()["reply_to"] == bobs_message.pk


@pytest.mark.parametrize("reply_to", [None, ""])
def test_an_empty_reply_to_means_none(as_carol, public_room, reply_to):
    response = as_carol.post(
        f"/api/rooms/{public_room.pk}/messages/",
        {"body": "hi", "reply_to": reply_to},
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["reply_to"] is None


def _bad_reply_targets(bobs_message, bob, alice):
    other_room = services.room_create(name="elsewhere", creator=alice)
    elsewhere = services.message_send(room=other_room, author=alice, body="elsewhere").message
    gone = services.message_send(room=bobs_message.room, author=bob, body="gone").message
    services.message_delete(room=bobs_message.room, user=bob, message_id=gone.pk)
    return {"another room's message": elsewhere.pk, "a deleted message": gone.pk}


@pytest.mark.parametrize(
    "reply_to",
    [
        "another room's message",
        "a deleted message",
        987654,
        "abc",
        True,
        1.5,
        -1,
        0,
        2**63,
        [1],
    ],
)
def test_a_bad_reply_to_is_400_on_reply_to_and_writes_nothing(
    as_carol, bobs_message, bob, alice, reply_to
):
    targets = _bad_reply_targets(bobs_message, bob, alice)
    reply_to = targets.get(reply_to, reply_to) if isinstance(reply_to, str) else reply_to
    count, last_seq = Message.objects.count(), Room.objects.get(pk=bobs_message.room_id).last_seq

    response = as_carol.post(
        f"/api/rooms/{bobs_message.room_id}/messages/",
        {"body": "answer", "reply_to": reply_to},
        format="json",
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert inputs_of(response) == ["reply_to"]
    assert Message.objects.count() == count
    assert Room.objects.get(pk=bobs_message.room_id).last_seq == last_seq
