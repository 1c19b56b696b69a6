"""/api/rooms/<pk>/messages/?around=<seq>: the page centred on one message — what a search
result or a notification opens in the UI (the room page's ``?around=``), for API clients."""

import pytest


def _url(room, query=""):
    return f"/api/rooms/{room.pk}/messages/{query}"


def _seqs(response):
    return [message["seq"] for message in response.json()["results"]]


@pytest.fixture
def thirty(public_room, alice, send):
    return [send(public_room, alice, f"message {n}") for n in range(1, 31)]


def test_around_centres_the_page_on_the_message_with_links_both_ways(as_carol, public_room, thirty):
    response = as_carol.get(_url(public_room, "?around=15&limit=5"))

    assert response.status_code == 200
    assert _seqs(response) == [13, 14, 15, 16, 17]
    body = response.json()
    older = as_carol.get(body["older"])
    newer = as_carol.get(body["newer"])
    assert _seqs(older)[-1] == 12 and "around" not in body["older"]
    assert _seqs(newer)[0] == 18 and "around" not in body["newer"]


def test_around_at_the_ends_of_the_room(as_carol, public_room, thirty):
    first = as_carol.get(_url(public_room, "?around=1&limit=5")).json()
    last = as_carol.get(_url(public_room, "?around=30&limit=5")).json()

    assert [m["seq"] for m in first["results"]] == [1, 2, 3]
    assert first["older"] is None and first["newer"] is not None
    assert [m["seq"] for m in last["results"]] == [28, 29, 30]
    assert last["newer"] is None and last["older"] is not None


def test_around_past_the_newest_message_gives_the_newest_page(as_carol, public_room, thirty):
    response = as_carol.get(_url(public_room, "?around=999&limit=3"))

    assert _seqs(response) == [28, 29, 30]


def test_around_with_before_or_after_is_refused(as_carol, public_room, thirty):
    for query in ("?around=3&before=5", "?around=3&after=5"):
        response = as_carol.get(_url(public_room, query))
        assert response.status_code == 400, query


def test_around_must_be_a_seq(as_carol, public_room, thirty):
    assert as_carol.get(_url(public_room, "?around=-1")).status_code == 400
    assert as_carol.get(_url(public_room, "?around=abc")).status_code == 400


def test_around_in_a_private_room_is_not_found_for_an_outsider(as_carol, private_room):
    assert as_carol.get(_url(private_room, "?around=1")).status_code == 404
