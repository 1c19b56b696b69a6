"""The user stream, through the whole ASGI stack: ``/ws/user/`` and the room socket (from its
first resume) carry a user's unread counts, notifications and "the sidebar changed" as JSON
frames; access changes close the sockets of a room its user may no longer see (4403); and what
a lost event would leave wrong, the hub's periodic work puts right from the database.

Every frame kind: sync, unread, notify, sidebar, room, directory. On the real Redis channel
layer when REDIS_URL is set (CI), in memory otherwise. Tests wait for frames (with timeouts),
never for a fixed time."""

import asyncio
import json
import uuid
from collections import deque

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from apps.chat import fanout, realtime, services
from apps.chat.delivery import UserStream
from apps.chat.models import Membership, Message, Room
from apps.chat.unread import Fact

from .helpers import (
    CLOSED_4401,
    assert_alive,
    assert_closed_and_deaf,
    logged_in,
    message_count,
    next_close,
    open_socket,
    send_json,
    socket_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_4403 = {"type": "websocket.close", "code": 4403}


async def user_socket(user):
    """``/ws/user/`` for ``user``, once its first ``sync`` came (returned too)."""
    socket = await socket_for(await logged_in(user), None)
    return socket, (await socket.user_frame_of("sync"))["rooms"]


async def room_socket(user, room, synced=True):
    """A page's socket of ``room`` (resumed), once its first ``sync`` came."""
    socket = await socket_for(await logged_in(user), room.pk)
    if synced:
        await socket.user_frame_of("sync")
    return socket


def send(room, author, body, **kwargs):
    return database_sync_to_async(services.message_send)(
        room=room, author=author, body=body, **kwargs
    )


async def drain(socket, quiet: float = 0.3) -> list[dict]:
    """The user-stream frames that come until none has for ``quiet`` seconds."""
    frames = []
    while True:
        try:
            frames.append(await socket.user_frame(timeout=quiet))
        except TimeoutError:
            return frames


def count_loads(stream) -> list:
    """Record every database read of the stream's counts (the rooms it asked for), in the
    returned list, and still do them."""
    reads = []
    real_load = stream._load

    async def counting(room_ids):
        reads.append(room_ids)
        return await real_load(room_ids)

    stream._load = counting
    return reads


async def close_all(*sockets) -> None:
    for socket in sockets:
        await socket.disconnect()


@pytest.fixture
def group(alice, bob, carol):
    """A private group of alice (owner), bob and carol."""
    return services.room_create(name="team", creator=alice, private=True, members=["bob", "carol"])


@pytest.fixture
def quick_grace(monkeypatch):
    """The refresh re-reads counts behind the room after this grace (an event on its way)."""
    monkeypatch.setattr(fanout, "LOST_GRACE_SECONDS", 0.05)


# --- sync -------------------------------------------------------------------------------------


async def test_the_user_socket_starts_with_the_state_of_every_membership(
    public_room, private_room, group, alice, bob, unlimited
):
    for body in ("one", "two @alice"):
        await send(public_room, bob, body)
    socket, rooms = await user_socket(alice)
    assert rooms == {
        str(public_room.pk): {
            "unread": 2,
            "mentions": 1,
            "notify": "mentions",
            "muted": False,
            "pointer": 0,
            "kind": "public",
        },
        str(private_room.pk): {
            "unread": 0,
            "mentions": 0,
            "notify": "all",
            "muted": False,
            "pointer": 0,
            "kind": "dm",
        },
        str(group.pk): {
            "unread": 0,
            "mentions": 0,
            "notify": "mentions",
            "muted": False,
            "pointer": 0,
            "kind": "private",
        },
    }
    assert await socket.no_user_frame()  # one sync, nothing else
    await socket.disconnect()


async def test_an_anonymous_user_socket_is_closed_with_4401(db):
    socket, connected = await open_socket(None, None)
    assert connected
    assert await socket.receive_output(timeout=5) == CLOSED_4401
    await socket.disconnect()


async def test_a_user_with_no_room_gets_an_empty_sync(make_user):
    dave = await database_sync_to_async(make_user)("dave")
    socket, rooms = await user_socket(dave)
    assert rooms == {}
    await socket.disconnect()


async def test_a_room_socket_starts_its_user_stream_with_its_first_resume(public_room, alice):
    socket, connected = await open_socket(public_room.pk, alice)
    assert connected
    assert await socket.no_user_frame()  # a client that never resumes: the room stream only
    await send_json(socket, {"type": "resume", "after_seq": 0})
    rooms = (await socket.user_frame_of("sync"))["rooms"]
    assert set(rooms) == {str(public_room.pk)}
    await send_json(socket, {"type": "resume", "after_seq": 0})  # a reconnect's resume
    assert await socket.no_user_frame()  # the stream started once
    await socket.disconnect()


async def test_the_user_socket_takes_no_frames(alice):
    socket, _ = await user_socket(alice)
    await send_json(socket, {"type": "read", "seq": 1})
    assert "Unknown frame type" in await socket.receive_from(timeout=5)
    await socket.disconnect()


# --- unread and notify --------------------------------------------------------------------------


async def test_a_message_reaches_every_socket_of_each_member_as_an_unread_frame(
    public_room, alice, bob
):
    everywhere, _ = await user_socket(alice)
    in_room = await room_socket(alice, public_room)
    message = (await send(public_room, bob, "hello")).message
    expected = {
        "type": "unread",
        "room": public_room.pk,
        "unread": 1,
        "mentions": 0,
        "muted": False,
        "pointer": 0,
    }
    for socket in (everywhere, in_room):
        assert await socket.user_frame(timeout=2) == expected
    assert f'id="message-{message.pk}"' in await in_room.receive_from(timeout=5)
    # Mentions only (the default outside DMs): a message that does not name alice is silent.
    assert await everywhere.no_user_frame()
    await close_all(everywhere, in_room)


async def test_ones_own_message_counts_nothing_and_moves_ones_pointer(public_room, alice):
    everywhere, _ = await user_socket(alice)
    in_room = await room_socket(alice, public_room)
    await send_json(in_room, {"body": "mine", "client_id": str(uuid.uuid4())})
    assert "mine" in await in_room.receive_from(timeout=5)
    seq = await database_sync_to_async(lambda: Message.objects.get(body="mine").seq)()
    for socket in (everywhere, in_room):
        frame = await socket.user_frame(timeout=2)
        assert (frame["unread"], frame["mentions"], frame["pointer"]) == (0, 0, seq)
    assert await everywhere.no_user_frame() and await in_room.no_user_frame()
    await close_all(everywhere, in_room)


async def test_a_mention_counts_and_notifies_once_built_for_all(public_room, alice, bob, carol):
    await database_sync_to_async(services.room_join)(room=public_room, user=carol)
    alice_socket, _ = await user_socket(alice)
    carol_socket, _ = await user_socket(carol)
    message = (await send(public_room, bob, "lunch? @alice @carol\nsecond line")).message
    notify = {
        "type": "notify",
        "room": public_room.pk,
        "message": message.pk,
        "title": "general",
        "body": "Bob: lunch? @alice @carol",
        "url": reverse("chat:room_detail", kwargs={"pk": public_room.pk})
        + f"?around={message.seq}#message-{message.pk}",
    }
    for socket in (alice_socket, carol_socket):
        frame = await socket.user_frame(timeout=2)
        assert (frame["type"], frame["unread"], frame["mentions"]) == ("unread", 1, 1)
        assert await socket.user_frame(timeout=2) == notify
    await close_all(alice_socket, carol_socket)


async def test_every_dm_message_notifies_with_the_author_as_title(private_room, alice, bob):
    socket, _ = await user_socket(alice)
    message = (await send(private_room, bob, "psst")).message
    assert (await socket.user_frame(timeout=2))["unread"] == 1
    notify = await socket.user_frame(timeout=2)
    assert notify == {
        "type": "notify",
        "room": private_room.pk,
        "message": message.pk,
        "title": "Bob",
        "body": "psst",
        "url": reverse("chat:room_detail", kwargs={"pk": private_room.pk})
        + f"?around={message.seq}#message-{message.pk}",
    }
    await socket.disconnect()


async def test_at_room_notifies_every_member_but_its_author(group, alice, bob, carol):
    sockets = {user.username: (await user_socket(user))[0] for user in (alice, bob, carol)}
    await send(group, alice, "meeting @room")
    for name in ("bob", "carol"):
        frame = await sockets[name].user_frame(timeout=2)
        assert (frame["unread"], frame["mentions"]) == (1, 1)
        assert (await sockets[name].user_frame(timeout=2))["title"] == "team"
    frame = await sockets["alice"].user_frame(timeout=2)  # her pointer, past her message
    assert (frame["unread"], frame["mentions"]) == (0, 0)
    assert await sockets["alice"].no_user_frame()  # and no notification
    await close_all(*sockets.values())


async def test_a_muted_room_counts_but_never_notifies(private_room, alice, bob):
    socket, _ = await user_socket(alice)
    await database_sync_to_async(services.membership_set_notify)(
        room=private_room, user=alice, notify="none"
    )
    rooms = (await socket.user_frame_of("sync"))["rooms"]
    assert rooms[str(private_room.pk)]["muted"] is True
    assert await socket.user_frame(timeout=2) == {"type": "sidebar"}
    await send(private_room, bob, "@alice are you there")
    frame = await socket.user_frame(timeout=2)
    assert (frame["unread"], frame["mentions"], frame["muted"]) == (1, 1, True)
    assert await socket.no_user_frame()  # no notify
    await socket.disconnect()


async def test_edits_change_the_mention_count_and_deletes_uncount(public_room, alice, bob):
    socket, _ = await user_socket(alice)
    in_room = await room_socket(bob, public_room)  # bob's acknowledgements: the changes are in
    message = (await send(public_room, bob, "hello")).message
    assert (await socket.user_frame(timeout=2))["unread"] == 1
    for body, mentions in (("hello @alice", 1), ("hello again", 0), ("@room hello", 1)):
        await send_json(in_room, {"type": "edit", "id": message.pk, "body": body})
        frame = await socket.user_frame(timeout=2)
        assert (frame["type"], frame["unread"], frame["mentions"]) == ("unread", 1, mentions)
    await send_json(in_room, {"type": "delete", "id": message.pk})
    frame = await socket.user_frame(timeout=2)
    assert (frame["unread"], frame["mentions"]) == (0, 0)
    assert await socket.no_user_frame()  # edits never notify
    await close_all(socket, in_room)


# --- read ---------------------------------------------------------------------------------------


async def test_a_read_on_one_socket_clears_the_other_within_two_seconds(
    public_room, alice, bob, unlimited
):
    elsewhere, _ = await user_socket(alice)
    reading = await room_socket(alice, public_room)
    for body in ("one", "two", "@alice three"):
        last = (await send(public_room, bob, body)).message
    for socket in (elsewhere, reading):
        await socket.user_frame_of("unread", timeout=2, unread=3, mentions=1)
        assert (await socket.user_frame(timeout=2))["type"] == "notify"
    await send_json(reading, {"type": "read", "seq": last.seq})
    cleared = {
        "type": "unread",
        "room": public_room.pk,
        "unread": 0,
        "mentions": 0,
        "muted": False,
        "pointer": last.seq,
    }
    for socket in (reading, elsewhere):
        assert await socket.user_frame(timeout=2) == cleared
    # "Mark as unread from here": back to before the second message, on both.
    await send_json(reading, {"type": "read", "seq": last.seq - 2, "force": True})
    for socket in (reading, elsewhere):
        frame = await socket.user_frame(timeout=2)
        assert (frame["unread"], frame["mentions"], frame["pointer"]) == (2, 1, last.seq - 2)
    pointer = await database_sync_to_async(
        Membership.objects.values_list("last_read_seq", flat=True).get
    )(room=public_room, user=alice)
    assert pointer == last.seq - 2
    await close_all(elsewhere, reading)


async def test_a_read_that_moves_nothing_sends_nothing(public_room, alice, bob):
    reading = await room_socket(alice, public_room)
    await send(public_room, bob, "one")
    await reading.user_frame_of("unread", unread=1)
    await send_json(reading, {"type": "read", "seq": 0})  # backwards without force
    assert await reading.no_user_frame()
    await reading.disconnect()


@pytest.mark.parametrize("seq", ["abc", -1, None, 1.5, True])
async def test_a_read_with_a_bad_seq_gets_an_error_fragment(public_room, alice, seq):
    reading = await room_socket(alice, public_room)
    await send_json(reading, {"type": "read", "seq": seq})
    html = await reading.receive_from(timeout=5)
    assert 'id="composer-error"' in html and "seq" in html
    await reading.disconnect()


async def test_reads_past_the_rate_limit_are_dropped_and_the_socket_goes_on(
    public_room, alice, bob, settings
):
    settings.PARLEY_READ_RATE = (1, 10)
    reading = await room_socket(alice, public_room)
    await send(public_room, bob, "one")
    await reading.user_frame_of("unread", unread=1)
    await send_json(reading, {"type": "read", "seq": 0, "force": True})  # the one allowed
    await send_json(reading, {"type": "read", "seq": 99})  # limited: dropped, no answer
    assert await reading.no_user_frame()
    assert (
        await database_sync_to_async(
            lambda: Membership.objects.get(room=public_room, user=alice).last_read_seq
        )()
        == 0
    )
    await assert_alive(reading)
    await reading.disconnect()


async def test_a_read_by_a_non_member_of_a_public_room_is_ignored(public_room, carol):
    reading = await room_socket(carol, public_room)
    await send_json(reading, {"type": "read", "seq": 0})
    assert await reading.receive_nothing(timeout=0.3)
    assert await reading.no_user_frame()
    assert not await database_sync_to_async(
        Membership.objects.filter(room=public_room, user=carol).exists
    )()
    await reading.disconnect()


# --- live reading: a focused page at the bottom of its room ---------------------------------------


@pytest.fixture
def held_reads(monkeypatch):
    """The hub writes live reads only when the test says (``flush``), not on its timer."""
    monkeypatch.setattr(fanout, "READ_FLUSH_SECONDS", 3600)

    async def flush():
        await fanout.hub().flush_reads()

    return flush


def pointer_of(user, room):
    return database_sync_to_async(Membership.objects.values_list("last_read_seq", flat=True).get)(
        room=room, user=user
    )


async def test_a_page_reading_live_gets_articles_only_and_the_pointer_follows_in_batches(
    public_room, alice, bob, unlimited, held_reads
):
    elsewhere, _ = await user_socket(alice)
    reading = await room_socket(alice, public_room)
    first = (await send(public_room, bob, "one")).message
    for socket in (elsewhere, reading):
        await socket.user_frame_of("unread", timeout=2, unread=1)
    await send_json(reading, {"type": "active", "seq": first.seq})
    for socket in (reading, elsewhere):
        await socket.user_frame_of("unread", timeout=2, unread=0, pointer=first.seq)
    # (The answer and the user.read event may both say so: frames of one state, in order.)
    assert {json.dumps(f) for f in await drain(reading)} <= {
        json.dumps(
            {
                "type": "unread",
                "room": public_room.pk,
                "unread": 0,
                "mentions": 0,
                "muted": False,
                "pointer": first.seq,
            }
        )
    }

    # While it reads live, a message is an article on that socket and nothing more: no
    # unread frame, no notification (a mention included). The other socket counts them.
    await send(public_room, bob, "two")
    last = (await send(public_room, bob, "@alice three")).message
    while "three" not in await reading.receive_from(timeout=5):
        pass
    await elsewhere.user_frame_of("unread", timeout=2, unread=2, mentions=1)
    assert (await elsewhere.user_frame(timeout=2))["type"] == "notify"
    assert await reading.no_user_frame()
    assert await pointer_of(alice, public_room) == first.seq  # not written yet

    await held_reads()  # the batch: one UPDATE for the room, one room.read event
    assert await pointer_of(alice, public_room) == last.seq
    await elsewhere.user_frame_of("unread", timeout=2, unread=0, mentions=0, pointer=last.seq)
    assert await reading.no_user_frame()  # it knew already
    await close_all(elsewhere, reading)


async def test_inactive_and_mark_as_unread_end_live_reading(public_room, alice, bob, held_reads):
    reading = await room_socket(alice, public_room)
    await send_json(reading, {"type": "active", "seq": 0})
    await reading.user_frame_of("unread", timeout=2, unread=0)  # its answer: live from now
    await send(public_room, bob, "read at once")
    await reading.receive_from(timeout=5)
    assert await reading.no_user_frame()

    await send_json(reading, {"type": "inactive"})
    second = (await send(public_room, bob, "counted")).message
    await reading.user_frame_of("unread", timeout=2, unread=1)

    await send_json(reading, {"type": "active", "seq": second.seq})
    await reading.user_frame_of("unread", timeout=2, unread=0, pointer=second.seq)
    await send_json(reading, {"type": "read", "seq": second.seq - 1, "force": True})
    await reading.user_frame_of("unread", timeout=2, unread=1, pointer=second.seq - 1)
    await send(public_room, bob, "counted too")
    await reading.user_frame_of("unread", timeout=2, unread=2)
    await held_reads()
    assert await pointer_of(alice, public_room) == second.seq - 1  # nothing was read live
    await reading.disconnect()


async def test_reading_live_a_room_already_read_needs_no_database(
    public_room, alice, bob, held_reads, monkeypatch
):
    message = (await send(public_room, bob, "one")).message
    await database_sync_to_async(services.room_mark_read)(
        room=public_room, user=alice, seq=message.seq
    )
    reading = await room_socket(alice, public_room)

    def no_read(**kwargs):
        raise AssertionError("the counts knew the pointer: no database read")

    monkeypatch.setattr(services, "room_mark_read", no_read)
    await send_json(reading, {"type": "active", "seq": message.seq})
    await reading.user_frame_of("unread", timeout=2, unread=0, pointer=message.seq)
    await send(public_room, bob, "two")
    while "two" not in await reading.receive_from(timeout=5):
        pass
    assert await reading.no_user_frame()  # read live
    await reading.disconnect()


@pytest.mark.parametrize("seq", ["abc", -1, None])
async def test_an_active_frame_with_a_bad_seq_gets_an_error_fragment(public_room, alice, seq):
    reading = await room_socket(alice, public_room)
    await send_json(reading, {"type": "active", "seq": seq})
    html = await reading.receive_from(timeout=5)
    assert 'id="composer-error"' in html and "seq" in html
    await reading.disconnect()


async def test_a_non_member_reading_live_moves_and_gets_nothing(public_room, alice, carol):
    reading = await room_socket(carol, public_room)
    await send_json(reading, {"type": "active", "seq": 0})
    assert await reading.no_user_frame()  # no answer: nothing to read
    await send(public_room, alice, "hello")
    assert "hello" in await reading.receive_from(timeout=5)
    assert await reading.no_user_frame()
    assert not fanout.hub()._reads
    await reading.disconnect()


async def test_live_reads_are_written_by_the_hubs_timer_within_a_second(
    public_room, alice, bob, monkeypatch
):
    monkeypatch.setattr(fanout, "READ_FLUSH_SECONDS", 0.05)
    elsewhere, _ = await user_socket(alice)
    reading = await room_socket(alice, public_room)
    await send_json(reading, {"type": "active", "seq": 0})
    await reading.user_frame_of("unread", timeout=2)
    message = (await send(public_room, bob, "hello")).message
    await elsewhere.user_frame_of("unread", timeout=2, unread=1)
    await elsewhere.user_frame_of("unread", timeout=2, unread=0, pointer=message.seq)
    assert await pointer_of(alice, public_room) == message.seq
    await close_all(elsewhere, reading)


async def test_the_re_check_leaves_a_pointer_read_live_that_is_not_written_yet(
    public_room, alice, bob, held_reads
):
    """The counts' pointer of the room read live is ahead of the database's until the next
    batch: the periodic re-check must not take that for a lost event (it would re-read the
    counts of every live reader in the process every 30 s)."""
    reading = await room_socket(alice, public_room)
    await send_json(reading, {"type": "active", "seq": 0})
    await reading.user_frame_of("unread", timeout=2)
    await send(public_room, bob, "read live")
    await reading.receive_from(timeout=5)
    (consumer,) = fanout.hub().user_sockets(alice.pk)
    stream = consumer.user_stream
    reads = count_loads(stream)
    await fanout.hub().verify()
    await stream.idle()
    assert reads == [] and await reading.no_user_frame()
    assert await pointer_of(alice, public_room) == 0  # not written yet: the batch will
    await reading.disconnect()


async def test_live_reads_kept_while_the_database_is_away_are_written_next_time(
    public_room, alice, bob, held_reads, monkeypatch
):
    reading = await room_socket(alice, public_room)
    await send_json(reading, {"type": "active", "seq": 0})
    await reading.user_frame_of("unread", timeout=2)
    message = (await send(public_room, bob, "hello")).message
    await reading.receive_from(timeout=5)
    real = services.rooms_read_live

    def away(reads):
        raise ConnectionError("database away")

    monkeypatch.setattr(services, "rooms_read_live", away)
    await held_reads()
    assert await pointer_of(alice, public_room) == 0
    monkeypatch.setattr(services, "rooms_read_live", real)
    await held_reads()
    assert await pointer_of(alice, public_room) == message.seq
    await reading.disconnect()


# --- access --------------------------------------------------------------------------------------


async def test_a_member_removed_from_a_private_group_is_closed_and_gets_nothing_more(
    group, alice, bob, carol
):
    viewing = await room_socket(carol, group)
    bot, connected = await open_socket(group.pk, carol)  # never resumes: no user stream
    assert connected
    elsewhere, _ = await user_socket(carol)
    watcher = await room_socket(bob, group)
    await database_sync_to_async(services.member_remove)(room=group, user=alice, member_id=carol.pk)
    for socket in (viewing, bot):
        assert await next_close(socket, timeout=2) == CLOSED_4403
    # The room leaves her sidebar: "sidebar" (room.access) and a sync without it (user.rooms).
    assert str(group.pk) not in (await elsewhere.user_frame_of("sync", timeout=2))["rooms"]
    # Nothing more reaches her: bob's next message comes to bob, not to carol.
    await send_json(watcher, {"body": "after carol", "client_id": str(uuid.uuid4())})
    assert "after carol" in await watcher.receive_from(timeout=5)
    await send_json(viewing, {"body": "still here?", "client_id": str(uuid.uuid4())})
    for socket in (viewing, bot):
        assert await socket.receive_nothing(timeout=0.3)
    later = await drain(elsewhere)  # what the removal sent after the sync: sidebar frames
    assert later and {frame["type"] for frame in later} == {"sidebar"}
    await close_all(viewing, bot, elsewhere, watcher)
    assert not await database_sync_to_async(Message.objects.filter(body="still here?").exists)()


async def test_leaving_a_private_group_closes_ones_own_sockets_of_it(group, bob):
    viewing = await room_socket(bob, group)
    elsewhere, _ = await user_socket(bob)
    await database_sync_to_async(services.room_leave)(room=group, user=bob)
    assert await next_close(viewing, timeout=2) == CLOSED_4403
    assert await elsewhere.user_frame_of("sidebar", timeout=2) == {"type": "sidebar"}
    await close_all(viewing, elsewhere)


async def test_deleting_a_room_closes_every_viewer_member_or_not(public_room, alice, bob, carol):
    await database_sync_to_async(services.room_join)(room=public_room, user=bob)
    viewers = [await room_socket(user, public_room) for user in (alice, bob, carol)]
    elsewhere, _ = await user_socket(bob)
    await database_sync_to_async(services.room_delete)(room=public_room, user=alice)
    for socket in viewers:
        assert await next_close(socket, timeout=2) == CLOSED_4403
    frames = [await elsewhere.user_frame(timeout=2)] + await drain(elsewhere)
    # It leaves the sidebar (room.access, then user.rooms: a sync without it, and sidebar);
    # a public room: the directory too.
    assert {frame["type"] for frame in frames} == {"sidebar", "sync", "directory"}
    (sync,) = [frame for frame in frames if frame["type"] == "sync"]
    assert str(public_room.pk) not in sync["rooms"]
    await close_all(*viewers, elsewhere)


async def test_leaving_a_public_room_keeps_its_page_open(public_room, bob):
    await database_sync_to_async(services.room_join)(room=public_room, user=bob)
    viewing = await room_socket(bob, public_room)
    await database_sync_to_async(services.room_leave)(room=public_room, user=bob)
    rooms = (await viewing.user_frame_of("sync", timeout=2))["rooms"]
    assert str(public_room.pk) not in rooms
    assert await viewing.user_frame(timeout=2) == {"type": "sidebar"}
    assert await viewing.receive_nothing(timeout=0.3)  # still open: anyone may read it
    await viewing.disconnect()


# --- the room list, the room, the directory -----------------------------------------------------


async def test_a_new_dm_appears_live_and_its_first_message_notifies(alice, bob, carol):
    socket, rooms = await user_socket(bob)
    dm, created = await database_sync_to_async(services.dm_get_or_create)(user=carol, other=bob)
    assert created
    rooms = (await socket.user_frame_of("sync", timeout=2))["rooms"]
    assert rooms[str(dm.pk)] == {
        "unread": 0,
        "mentions": 0,
        "notify": "all",
        "muted": False,
        "pointer": 0,
        "kind": "dm",
    }
    assert await socket.user_frame(timeout=2) == {"type": "sidebar"}
    await send(dm, carol, "hi bob")
    assert (await socket.user_frame(timeout=2))["unread"] == 1
    assert (await socket.user_frame(timeout=2))["title"] == "Carol"
    await socket.disconnect()


async def test_being_added_to_a_group_makes_it_appear_and_count(group, alice, make_user):
    dave = await database_sync_to_async(make_user)("dave")
    socket, rooms = await user_socket(dave)
    assert rooms == {}
    await database_sync_to_async(services.member_add)(room=group, user=alice, username="dave")
    assert str(group.pk) in (await socket.user_frame_of("sync", timeout=2))["rooms"]
    assert await socket.user_frame(timeout=2) == {"type": "sidebar"}
    await send(group, alice, "welcome @dave")
    frame = await socket.user_frame(timeout=2)
    assert (frame["room"], frame["unread"], frame["mentions"]) == (group.pk, 1, 1)
    await socket.disconnect()


async def test_a_rename_reaches_watchers_and_viewers_once_each(group, public_room, alice, bob):
    watching, _ = await user_socket(bob)
    viewing = await room_socket(bob, group)
    await database_sync_to_async(services.room_update)(
        room=group, user=alice, name="the team", topic="ship it"
    )
    frame = {"type": "room", "room": group.pk, "name": "the team", "topic": "ship it"}
    for socket in (watching, viewing):
        assert await socket.user_frame(timeout=2) == frame
        assert await socket.no_user_frame()
    await close_all(watching, viewing)


async def test_a_rename_reaches_a_viewer_who_is_not_a_member(public_room, alice, carol):
    viewing = await room_socket(carol, public_room)
    await database_sync_to_async(services.room_update)(room=public_room, user=alice, topic="news")
    frame = await viewing.user_frame_of("room", timeout=2)
    assert (frame["room"], frame["name"], frame["topic"]) == (public_room.pk, "general", "news")
    await viewing.disconnect()


async def test_a_new_public_room_tells_every_socket_to_refetch_the_directory(alice, bob, make_user):
    dave = await database_sync_to_async(make_user)("dave")
    sockets = [(await user_socket(user))[0] for user in (bob, dave)]
    await database_sync_to_async(services.room_create)(name="random", creator=alice)
    for socket in sockets:
        assert await socket.user_frame(timeout=2) == {"type": "directory"}
    await close_all(*sockets)


# --- sessions ------------------------------------------------------------------------------------


async def test_logout_closes_the_user_socket_with_4401(alice):
    browser = await logged_in(alice)
    socket = await socket_for(browser, None)
    await socket.user_frame_of("sync")
    assert (await database_sync_to_async(browser.post)("/accounts/logout/")).status_code == 302
    await assert_closed_and_deaf(socket)


async def test_deactivation_closes_the_user_socket_with_4401(alice):
    socket, _ = await user_socket(alice)
    await database_sync_to_async(type(alice).objects.filter(pk=alice.pk).update)(is_active=False)
    before = await message_count()
    await fanout.hub().verify()  # (.update sends no signal: the re-check finds it)
    assert await next_close(socket, timeout=2) == CLOSED_4401
    await socket.disconnect()
    assert await message_count() == before


# --- what lost events would leave wrong ----------------------------------------------------------


async def test_a_lost_change_is_recovered_by_the_refresh_with_exact_counts(
    public_room, alice, bob, monkeypatch, quick_grace, unlimited
):
    socket, _ = await user_socket(alice)
    in_room = await room_socket(bob, public_room)
    kept = (await send(public_room, bob, "first @alice")).message
    await socket.user_frame_of("unread", unread=1, mentions=1)
    await socket.user_frame_of("notify")
    real_publish = realtime._publish_change
    monkeypatch.setattr(realtime, "_publish_change", lambda change: None)
    await send(public_room, bob, "lost one")
    await send(public_room, bob, "lost @alice two")
    await send_json(in_room, {"type": "delete", "id": kept.pk})  # the delete is lost too
    while "data-deleted" not in await in_room.receive_from(timeout=5):  # its own ack: done
        pass
    assert await socket.no_user_frame()
    monkeypatch.setattr(realtime, "_publish_change", real_publish)
    await fanout.hub().refresh()
    frame = await socket.user_frame(timeout=2)
    assert (frame["unread"], frame["mentions"]) == (2, 1)  # two new, the first deleted
    await send(public_room, bob, "live again")
    assert (await socket.user_frame(timeout=2))["unread"] == 3
    await close_all(socket, in_room)


async def test_the_hub_tick_recovers_a_lost_change_on_its_own(
    private_room, alice, bob, monkeypatch, quick_grace
):
    """Wiring: nobody calls refresh; the tick (shortened here) does."""
    monkeypatch.setattr(fanout, "TICK_SECONDS", 0.1)
    socket, _ = await user_socket(alice)
    monkeypatch.setattr(realtime, "_publish_change", lambda change: None)
    await send(private_room, bob, "dropped")
    frame = await socket.user_frame(timeout=5)
    assert (frame["type"], frame["room"], frame["unread"]) == ("unread", private_room.pk, 1)
    await socket.disconnect()


async def test_a_refresh_with_nothing_lost_reads_no_counts(public_room, alice, bob, quick_grace):
    socket, _ = await user_socket(alice)
    await send(public_room, bob, "one")
    await socket.user_frame_of("unread", unread=1)
    stream = next(iter(fanout.hub().user_sockets(alice.pk))).user_stream
    reads = count_loads(stream)
    await fanout.hub().refresh()
    assert reads == [] and await socket.no_user_frame()
    await socket.disconnect()


async def test_a_lost_removal_is_caught_by_the_re_check(group, alice, carol, monkeypatch):
    viewing = await room_socket(carol, group)
    elsewhere, _ = await user_socket(carol)
    monkeypatch.setattr(realtime, "publish", lambda group, event, *, lost: None)
    await database_sync_to_async(services.member_remove)(room=group, user=alice, member_id=carol.pk)
    assert await viewing.receive_nothing(timeout=0.3)  # no event came
    await fanout.hub().verify()
    assert await next_close(viewing, timeout=2) == CLOSED_4403
    assert str(group.pk) not in (await elsewhere.user_frame_of("sync", timeout=2))["rooms"]
    assert await elsewhere.user_frame(timeout=2) == {"type": "sidebar"}
    await close_all(viewing, elsewhere)


async def test_a_lost_deletion_is_caught_by_the_re_check(public_room, alice, carol, monkeypatch):
    viewing = await room_socket(carol, public_room)  # not a member
    monkeypatch.setattr(realtime, "publish", lambda group, event, *, lost: None)
    await database_sync_to_async(services.room_delete)(room=public_room, user=alice)
    await fanout.hub().verify()
    assert await next_close(viewing, timeout=2) == CLOSED_4403
    await viewing.disconnect()


async def test_a_lost_access_event_still_closes_through_the_room_list_event(
    group, alice, bob, monkeypatch
):
    """room.access lost, user.rooms delivered: the user stream's re-read finds the room it
    shows no longer visible."""
    viewing = await room_socket(bob, group)
    monkeypatch.setattr(realtime, "emit_room_access", lambda room_id, user_ids: None)
    await database_sync_to_async(services.member_remove)(room=group, user=alice, member_id=bob.pk)
    assert await next_close(viewing, timeout=2) == CLOSED_4403
    await viewing.disconnect()


async def test_a_lost_read_is_caught_by_the_re_check(public_room, alice, bob, monkeypatch):
    elsewhere, _ = await user_socket(alice)
    reading = await room_socket(alice, public_room)
    last = (await send(public_room, bob, "one")).message
    await elsewhere.user_frame_of("unread", unread=1)
    monkeypatch.setattr(realtime, "emit_user_read", lambda user_id, room_id: None)
    await send_json(reading, {"type": "read", "seq": last.seq})
    await reading.user_frame_of("unread", timeout=2, unread=0)  # its own answer
    assert await elsewhere.no_user_frame()
    await fanout.hub().verify()
    assert await elsewhere.user_frame(timeout=2) == {
        "type": "unread",
        "room": public_room.pk,
        "unread": 0,
        "mentions": 0,
        "muted": False,
        "pointer": last.seq,
    }
    await close_all(elsewhere, reading)


async def test_a_lost_room_list_event_is_caught_by_the_re_check(alice, carol, monkeypatch):
    socket, rooms = await user_socket(carol)
    assert rooms == {}
    monkeypatch.setattr(realtime, "emit_user_rooms", lambda user_ids: None)
    dm, _ = await database_sync_to_async(services.dm_get_or_create)(user=alice, other=carol)
    assert await socket.no_user_frame()
    await fanout.hub().verify()
    assert str(dm.pk) in (await socket.user_frame_of("sync", timeout=2))["rooms"]
    assert await socket.user_frame(timeout=2) == {"type": "sidebar"}
    await socket.disconnect()


async def test_an_ended_socket_leaves_the_hub_before_its_disconnect(group, alice, carol):
    viewing = await room_socket(carol, group)
    hub = fanout.hub()
    (consumer,) = hub.user_sockets(carol.pk)
    await database_sync_to_async(services.member_remove)(room=group, user=alice, member_id=carol.pk)
    assert await next_close(viewing, timeout=2) == CLOSED_4403
    await asyncio.wait_for(consumer.closing, 2)  # the close is sent, and then it leaves
    assert not hub.users and not hub.rooms and not hub.tasks and not hub.watching
    await viewing.disconnect()


async def test_the_hub_stops_when_its_last_user_socket_goes(alice):
    socket, _ = await user_socket(alice)
    hub = fanout.hub()
    assert hub.tasks and hub.users
    await socket.disconnect()
    assert not hub.rooms and not hub.users and not hub.tasks and not hub.watching


async def test_watching_shares_the_rooms_subscription_with_viewing(public_room, alice, bob):
    everywhere, _ = await user_socket(alice)
    viewing = await room_socket(bob, public_room)
    room = fanout.hub().rooms[public_room.pk]
    assert len(room.watchers) == 1 and len(room.members) == 1
    await viewing.disconnect()
    assert public_room.pk in fanout.hub().rooms  # still watched
    await everywhere.disconnect()
    assert public_room.pk not in fanout.hub().rooms


@pytest.mark.redis
async def test_a_process_is_in_a_rooms_group_once_for_its_viewers_and_watchers(
    public_room, alice, bob, carol
):
    from .test_fanout import group_members

    await database_sync_to_async(services.room_join)(room=public_room, user=carol)
    watchers = [(await user_socket(user))[0] for user in (alice, carol)]
    viewer = await room_socket(bob, public_room)
    assert await asyncio.to_thread(group_members, public_room.pk) == 1
    await viewer.disconnect()
    assert await asyncio.to_thread(group_members, public_room.pk) == 1  # still watched
    await close_all(*watchers)
    assert await asyncio.to_thread(group_members, public_room.pk) == 0


async def test_room_deleted_in_the_database_drops_out_of_the_room_list(public_room, alice):
    """A room gone with no event at all (deleted by hand): the re-check re-reads the list."""
    socket, rooms = await user_socket(alice)
    assert str(public_room.pk) in rooms
    await database_sync_to_async(Room.objects.filter(pk=public_room.pk).delete)()
    await fanout.hub().verify()
    assert (await socket.user_frame_of("sync", timeout=2))["rooms"] == {}
    await socket.disconnect()


def test_the_batched_visibility_check_agrees_with_visible_to(
    public_room, private_room, group, alice, bob, carol, make_user
):
    dave = make_user("dave")
    users = [alice, bob, carol, dave]
    room_ids = [public_room.pk, private_room.pk, group.pk, 10**9]  # the last: no such room
    memberships, privacy = fanout.access_facts({u.pk for u in users}, set(room_ids))
    for user in users:
        visible = set(Room.objects.visible_to(user).values_list("pk", flat=True))
        for room_id in room_ids:
            assert fanout.can_see(privacy, memberships, user.pk, room_id) == (room_id in visible), (
                user,
                room_id,
            )


# --- the stream alone, with a fake hub, database and socket -------------------------------------


class FakeHub:
    def __init__(self, subscribed=()):
        self.watched: set[int] = set()
        self.subscribed = set(subscribed)
        self.facts: deque = deque()
        self.evicted = 0

    async def watch(self, stream, room_ids):
        self.watched = set(room_ids)

    def unwatch(self, stream, room_id):
        self.watched.discard(room_id)

    def subscribed_before(self, room_id, when):
        return room_id in self.subscribed

    def recent(self, room_id):
        return self.facts, self.evicted


class FakeDatabase:
    """``load``: answers from ``states`` (a function of the call's number), each call held
    until ``release()`` when ``gated``."""

    def __init__(self, answer, gated=False):
        self.answer = answer
        self.calls: list = []
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.entered = asyncio.Event()

    async def load(self, room_ids):
        self.calls.append(room_ids)
        self.entered.set()
        await self.gate.wait()
        return self.answer(len(self.calls), room_ids)


class FakeSocket:
    def __init__(self, blocked=False):
        self.frames: list[dict] = []
        self.gate = asyncio.Event()
        if not blocked:
            self.gate.set()

    async def send(self, frame):
        if not self.gate.is_set():
            await self.gate.wait()
        self.frames.append(json.loads(frame["text"]))


def unread_state(room_id, *, through, pointer=0, unread_n=0):
    return {
        "room_id": room_id,
        "kind": "public",
        "role": "member",
        "notify": "mentions",
        "pointer": pointer,
        "unread": unread_n,
        "mentions": 0,
        "through": through,
    }


def make_stream(database, hub, socket):
    return UserStream(user_id=1, send=socket.send, load=database.load, hub=hub, label="test")


async def test_a_read_event_crossing_the_streams_own_read_makes_it_read_again():
    answers = {1: unread_state(5, through=3, unread_n=3), 2: unread_state(5, through=3, pointer=3)}
    database = FakeDatabase(lambda n, rooms: {5: answers[min(n, 2)]}, gated=True)
    hub, socket = FakeHub(subscribed={5}), FakeSocket()
    stream = make_stream(database, hub, socket)
    stream.start()
    await database.entered.wait()
    stream.read(5, unread_state(5, through=3, pointer=3))  # newer or older than the read?
    database.gate.set()
    await stream.idle()
    assert database.calls == [None, [5]]
    assert socket.frames[0] == {
        "type": "sync",
        "rooms": {
            "5": {
                "unread": 3,
                "mentions": 0,
                "notify": "mentions",
                "muted": False,
                "pointer": 0,
                "kind": "public",
            }
        },
    }
    assert socket.frames[1]["type"] == "unread"
    assert (socket.frames[1]["unread"], socket.frames[1]["pointer"]) == (0, 3)
    stream.close()


async def test_a_room_subscribed_after_the_read_started_is_read_again():
    database = FakeDatabase(lambda n, rooms: {5: unread_state(5, through=n, unread_n=n)})
    hub, socket = FakeHub(subscribed=()), FakeSocket()
    stream = make_stream(database, hub, socket)
    stream.start()
    await stream.idle()
    assert database.calls == [None, [5]] and hub.watched == {5}
    assert socket.frames == [
        {
            "type": "sync",
            "rooms": {
                "5": {
                    "unread": 2,
                    "mentions": 0,
                    "notify": "mentions",
                    "muted": False,
                    "pointer": 0,
                    "kind": "public",
                }
            },
        }
    ]
    stream.close()


async def test_a_snapshot_older_than_the_hubs_evicted_facts_is_read_again():
    database = FakeDatabase(lambda n, rooms: {5: unread_state(5, through=3 + 5 * (n - 1))})
    hub, socket = FakeHub(subscribed={5}), FakeSocket()
    hub.evicted = 6  # facts up to seq 6 were dropped: a snapshot through 3 lacks some
    stream = make_stream(database, hub, socket)
    stream.start()
    await stream.idle()
    assert database.calls == [None, [5]]
    assert stream.counts[5].through == 8
    stream.close()


async def test_queued_unread_frames_coalesce_and_a_sync_replaces_them():
    database = FakeDatabase(lambda n, rooms: {5: unread_state(5, through=0)})
    hub, socket = FakeHub(subscribed={5}), FakeSocket()
    stream = make_stream(database, hub, socket)
    stream.start()
    await stream.idle()
    socket.gate.clear()  # the client stops reading
    for seq in (1, 2, 3):
        stream.room_change(Fact(room=5, seq=seq, kind="new", msg_seq=seq, author=2))
    stream.post({"type": "websocket.send", "text": '{"type":"directory"}'})
    socket.gate.set()
    await stream.idle()
    kinds = [(f["type"], f.get("unread")) for f in socket.frames[1:]]
    # The first went out at once (and waits); the two queued behind it are one, as it is now.
    assert kinds == [("unread", 1), ("unread", 3), ("directory", None)]
    socket.gate.clear()
    stream.room_change(Fact(room=5, seq=4, kind="new", msg_seq=4, author=2))
    stream.room_change(Fact(room=5, seq=5, kind="new", msg_seq=5, author=2))
    stream.rooms_changed()
    socket.gate.set()
    await stream.idle()
    kinds = [f["type"] for f in socket.frames[4:]]
    assert kinds == ["unread", "sync", "sidebar"]
    assert socket.frames[5]["rooms"]["5"]["unread"] == 0  # the database's answer: through 0
    stream.close()


async def test_a_socket_far_behind_gets_the_state_in_two_frames(monkeypatch):
    from apps.chat import delivery

    monkeypatch.setattr(delivery, "USER_BACKLOG_MAX", 3)
    database = FakeDatabase(lambda n, rooms: {5: unread_state(5, through=0)})
    hub, socket = FakeHub(subscribed={5}), FakeSocket()
    stream = make_stream(database, hub, socket)
    stream.start()
    await stream.idle()
    socket.gate.clear()
    for seq in range(1, 8):  # a mention each: an unread and a notify frame each
        stream.room_change(Fact(room=5, seq=seq, kind="new", msg_seq=seq, author=2, mentions=(1,)))
    socket.gate.set()
    await stream.idle()
    assert [f["type"] for f in socket.frames[2:]] == ["sync", "sidebar"]
    assert socket.frames[2]["rooms"]["5"]["unread"] == 7
    stream.close()
