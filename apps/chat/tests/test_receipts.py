"""Read receipts (issue 11): the rule (receipts.py: rooms of at most 10 members, never the
pointer of someone who sends none, nobody's for a viewer who sends none), and the live
``receipts`` frames through the whole ASGI stack — a reader's pointer moves (an explicit read,
or live reading in the hub's batch) and the room's viewers get every receipt sender's pointer,
at most once a second per room, never a viewer who sends none. On the real Redis channel layer
when REDIS_URL is set, in memory otherwise. Time is the hub's clock, set by the tests."""

import re

import pytest
from channels.db import database_sync_to_async

from apps.chat import fanout, receipts, services
from apps.chat.receipts import RECEIPTS_MAX_MEMBERS, receipts_of_rooms, room_receipts
from apps.profiles import services as profile_services

from . import helpers
from .helpers import assert_alive, logged_in, send_json, socket_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _receipts_are_user_frames(monkeypatch):
    """The test socket sets JSON frames it knows aside (``user_frame``): receipts too."""
    monkeypatch.setattr(
        helpers,
        "USER_FRAME",
        re.compile(r'\{"type":"(sync|unread|notify|sidebar|room|directory|receipts)"'),
    )


@pytest.fixture
def group(alice, bob, carol, unlimited):
    """A private group of alice (owner), bob and carol, with one message of alice's."""
    room = services.room_create(name="team", creator=alice, private=True, members=["bob", "carol"])
    services.message_send(room=room, author=alice, body="hello team")
    return room


def receipts_off(user):
    profile_services.profile_update(profile=user.profile, send_read_receipts=False)


async def viewer(user, room):
    """A page's socket of ``room`` (resumed), once its first ``sync`` came."""
    socket = await socket_for(await logged_in(user), room.pk)
    await socket.user_frame_of("sync")
    return socket


def mark_read(room, user, seq, force=False):
    return database_sync_to_async(services.room_mark_read)(
        room=room, user=user, seq=seq, force=force
    )


async def no_receipts(socket, timeout=0.5) -> bool:
    """No receipts frame within ``timeout`` (other user-stream frames are skipped)."""
    try:
        await socket.user_frame_of("receipts", timeout=timeout)
    except TimeoutError:
        return True
    return False


# --- the rule ---------------------------------------------------------------------------------


def test_every_member_who_sends_receipts_is_in_them(group, alice, bob, carol):
    services.room_mark_read(room=group, user=bob, seq=1)

    assert room_receipts(room=group, viewer=alice) == [(alice.pk, 1), (bob.pk, 1), (carol.pk, 0)]
    assert receipts_of_rooms([group.pk]) == {group.pk: [[alice.pk, 1], [bob.pk, 1], [carol.pk, 0]]}


def test_privacy_goes_both_ways(group, alice, bob, carol):
    receipts_off(bob)

    assert room_receipts(room=group, viewer=alice) == [(alice.pk, 1), (carol.pk, 0)]
    assert room_receipts(room=group, viewer=bob) == []  # he sees nobody's
    assert receipts_of_rooms([group.pk]) == {group.pk: [[alice.pk, 1], [carol.pk, 0]]}


def test_a_room_above_ten_members_has_none(public_room, alice, make_user):
    for n in range(RECEIPTS_MAX_MEMBERS - 1):
        services.room_join(room=public_room, user=make_user(f"user{n}"))
    assert len(room_receipts(room=public_room, viewer=alice)) == RECEIPTS_MAX_MEMBERS
    assert list(receipts_of_rooms([public_room.pk])) == [public_room.pk]

    services.room_join(room=public_room, user=make_user("eleventh"))

    assert room_receipts(room=public_room, viewer=alice) == []
    assert receipts_of_rooms([public_room.pk]) == {}
    assert receipts.receipt_people(room=public_room) == []


def test_the_emitters_read_is_one_query_for_any_number_of_rooms(
    group, public_room, private_room, django_assert_num_queries
):
    with django_assert_num_queries(1):
        found = receipts_of_rooms([group.pk, public_room.pk, private_room.pk])
    assert set(found) == {group.pk, public_room.pk, private_room.pk}


# --- live frames ------------------------------------------------------------------------------


async def test_a_read_reaches_the_other_viewers_as_a_receipts_frame(group, alice, bob, carol):
    alices, carols = await viewer(alice, group), await viewer(carol, group)

    await mark_read(group, bob, 1)

    expected = {
        "type": "receipts",
        "room": group.pk,
        "reads": [[alice.pk, 1], [bob.pk, 1], [carol.pk, 0]],
    }
    for socket in (alices, carols):
        assert await socket.user_frame_of("receipts", timeout=2) == expected
    await alices.disconnect()
    await carols.disconnect()


async def test_live_reading_moves_the_receipts_in_the_hubs_batch(
    group, alice, bob, carol, monkeypatch
):
    monkeypatch.setattr(fanout, "READ_FLUSH_SECONDS", 3600)  # the test flushes
    alices = await viewer(alice, group)
    bobs = await viewer(bob, group)
    await send_json(bobs, {"type": "active", "seq": 1})
    assert (await alices.user_frame_of("receipts", timeout=2))["reads"][1] == [bob.pk, 1]

    new = (
        await database_sync_to_async(services.message_send)(room=group, author=alice, body="more")
    ).message
    while "more" not in await bobs.receive_from(timeout=5):
        pass  # read live by Bob's focused page
    later = fanout.hub().now() + 10_000.0  # long after the first frame (relative: the
    fanout.hub().clock = lambda: later  # loop's clock is the machine's uptime, not from 0)
    await fanout.hub().flush_reads()

    frame = await alices.user_frame_of("receipts", timeout=2)
    assert frame["reads"] == [[alice.pk, new.seq], [bob.pk, new.seq], [carol.pk, 0]]
    await alices.disconnect()
    await bobs.disconnect()


async def test_at_most_one_frame_a_second_per_room_the_newest_wins(group, alice, bob, carol):
    alices = await viewer(alice, group)
    hub = fanout.hub()
    now = [1000.0]
    hub.clock = lambda: now[0]
    await mark_read(group, bob, 1)
    assert (await alices.user_frame_of("receipts", timeout=2))["reads"][1] == [bob.pk, 1]

    now[0] += 0.3
    await mark_read(group, carol, 1)
    await mark_read(group, bob, 0, force=True)  # "mark as unread": back to 0
    assert await no_receipts(alices)  # within the second: held

    now[0] += 0.7
    hub.receipts_due(group.pk)  # what the hub's timer does once the second is over
    frame = await alices.user_frame_of("receipts", timeout=2)
    assert frame["reads"] == [[alice.pk, 1], [bob.pk, 0], [carol.pk, 1]]  # one, the newest
    assert await no_receipts(alices)
    await alices.disconnect()


async def test_the_hubs_timer_sends_the_held_frame(group, alice, bob, carol, monkeypatch):
    monkeypatch.setattr(fanout, "RECEIPTS_SECONDS", 0.05)  # the timer, not the clock
    alices = await viewer(alice, group)
    await mark_read(group, bob, 1)
    await alices.user_frame_of("receipts", timeout=2)
    await mark_read(group, carol, 1)

    frame = await alices.user_frame_of("receipts", timeout=2)
    assert frame["reads"][2] == [carol.pk, 1]
    await alices.disconnect()


async def test_a_viewer_who_sends_no_receipts_gets_none(group, alice, bob, carol):
    await database_sync_to_async(receipts_off)(carol)
    alices, carols = await viewer(alice, group), await viewer(carol, group)

    await mark_read(group, bob, 1)

    frame = await alices.user_frame_of("receipts", timeout=2)
    assert [pair[0] for pair in frame["reads"]] == [alice.pk, bob.pk]  # not Carol's
    assert await no_receipts(carols)
    await assert_alive(carols)
    await alices.disconnect()
    await carols.disconnect()


async def test_a_reader_who_sends_no_receipts_moves_nothing(group, alice, bob, carol):
    await database_sync_to_async(receipts_off)(bob)
    alices = await viewer(alice, group)

    await mark_read(group, bob, 1)
    assert await no_receipts(alices)

    await mark_read(group, carol, 1)  # (and the frames do flow)
    frame = await alices.user_frame_of("receipts", timeout=2)
    assert frame["reads"] == [[alice.pk, 1], [carol.pk, 1]]
    await alices.disconnect()


async def test_a_room_above_ten_members_sends_no_frame(public_room, alice, bob, make_user):
    for n in range(RECEIPTS_MAX_MEMBERS):
        user = await database_sync_to_async(make_user)(f"user{n}")
        await database_sync_to_async(services.room_join)(room=public_room, user=user)
    await database_sync_to_async(services.message_send)(room=public_room, author=alice, body="hi")
    alices = await viewer(alice, public_room)

    await mark_read(public_room, user, 1)  # the 11th member reads

    assert await no_receipts(alices)
    await alices.disconnect()


async def test_switching_receipts_off_clears_the_page_and_on_brings_them_back(group, alice, bob):
    alices = await viewer(alice, group)

    await database_sync_to_async(receipts_off)(alice)
    # (The room's own frame for her change may come first, until her socket has re-read it.)
    frame = await alices.user_frame_of("receipts", timeout=2, reads=[])
    assert frame == {"type": "receipts", "room": group.pk, "reads": []}
    await mark_read(group, bob, 1)
    assert await no_receipts(alices)

    await database_sync_to_async(profile_services.profile_update)(
        profile=alice.profile, send_read_receipts=True
    )
    frame = await alices.user_frame_of("receipts", timeout=2)
    assert [bob.pk, 1] in frame["reads"]
    await alices.disconnect()


# --- the page ---------------------------------------------------------------------------------


def _page(user, room) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.get(room.get_absolute_url()).content.decode()


def test_the_page_embeds_the_members_and_the_pointers_once(group, alice, bob, carol):
    services.room_mark_read(room=group, user=bob, seq=1)

    html = _page(alice, group)

    assert html.count('data-reader="') == 3  # every member's small avatar, once
    assert f'data-reader="{bob.pk}" data-name="Bob"' in html
    assert 'data-text-seen="Seen"' in html and re.search(r" data-receipts[ >]", html)
    pairs = f"[[{alice.pk}, 1], [{bob.pk}, 1], [{carol.pk}, 0]]"
    assert f'<script id="receipts-data" type="application/json">{pairs}</script>' in html


def test_the_page_of_a_viewer_who_sends_none_has_no_pointers(group, alice, bob):
    receipts_off(bob)

    html = _page(bob, group)
    assert 'id="receipts-data"' not in html and not re.search(r" data-receipts[ >]", html)
    assert str([bob.pk, 0]) not in _page(alice, group).split('id="receipts-data"')[1][:200]


def test_a_large_rooms_page_has_no_receipts(public_room, alice, make_user):
    for n in range(RECEIPTS_MAX_MEMBERS):
        services.room_join(room=public_room, user=make_user(f"user{n}"))

    html = _page(alice, public_room)

    assert 'id="receipt-people"' not in html and 'id="receipts-data"' not in html


async def test_a_member_switching_receipts_off_leaves_the_others_pages(group, alice, bob, carol):
    alices = await viewer(alice, group)

    await database_sync_to_async(receipts_off)(bob)

    frame = await alices.user_frame_of("receipts", timeout=2)
    assert frame["reads"] == [[alice.pk, 1], [carol.pk, 0]]
    await database_sync_to_async(profile_services.profile_update)(
        profile=bob.profile, display_name="Bobby"
    )
    assert await no_receipts(alices)  # another change of his profile: nothing to say
    await alices.disconnect()
