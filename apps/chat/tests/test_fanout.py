"""Per-process fan-out: one group member per process, one channel per hub however the first
joins race, a cancelled handshake that harms no other, a refresh that holds up no join, and a
forgotten subscription restored from the database's point of view.

(Per-socket delivery is in test_delivery.py, start_eagerly in apps/core/tests/test_eager.py.)"""

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from apps.chat import fanout, realtime, services
from apps.core.eager import start_eagerly

from .helpers import joined

# --- the hub against the real channel layer ---------------------------------------------------

transactional_db = pytest.mark.django_db(transaction=True)


def group_members(room_pk: int) -> int:
    import redis

    layer = get_channel_layer()
    client = redis.Redis.from_url(settings.REDIS_URL)
    return client.zcard(layer._group_key(realtime.room_group(room_pk)))


@transactional_db
@pytest.mark.redis
async def test_a_process_is_one_group_member_however_many_sockets_it_holds(
    public_room, alice, bob, carol
):
    sockets = [await joined(public_room.pk, user) for user in (alice, bob, carol)]
    assert await asyncio.to_thread(group_members, public_room.pk) == 1
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="hi")
    for socket in sockets:
        assert 'data-seq="1"' in await socket.receive_from(timeout=5)
    for socket in sockets:
        await socket.disconnect()
    assert await asyncio.to_thread(group_members, public_room.pk) == 0
    assert not fanout.hub().rooms and not fanout.hub().tasks


@transactional_db
@pytest.mark.redis
async def test_a_subscription_redis_forgot_is_restored_and_the_gap_read_from_the_database(
    public_room, alice, bob
):
    """A Redis restart empties every group. The hub's refresh re-joins, and a socket that
    missed messages meanwhile gets them from the database."""
    import redis

    socket = await joined(public_room.pk, alice)
    # One live message first: the socket's resume is done, so only the hub can bring the next.
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="hi")
    assert 'data-seq="1"' in await socket.receive_from(timeout=5)
    layer = get_channel_layer()
    key = layer._group_key(realtime.room_group(public_room.pk))
    client = redis.Redis.from_url(settings.REDIS_URL)
    await asyncio.to_thread(client.delete, key)  # what a restart does
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="gone")
    assert await socket.receive_nothing(timeout=0.3)
    await fanout.hub().refresh()
    html = await socket.receive_from(timeout=5)
    assert 'data-seq="2"' in html and "gone" in html
    assert await asyncio.to_thread(group_members, public_room.pk) == 1
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="live")
    assert 'data-seq="3"' in await socket.receive_from(timeout=5)
    await socket.disconnect()


@transactional_db
async def test_a_broadcast_with_the_layer_down_still_stores_the_message(
    public_room, bob, monkeypatch
):
    from redis.exceptions import ConnectionError as RedisConnectionError

    layer = get_channel_layer()

    async def unreachable(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(layer, "group_send", unreachable)
    result = await database_sync_to_async(services.message_send)(
        room=public_room, author=bob, body="kept"
    )
    assert result.created and result.message.seq == 1


@transactional_db
@pytest.mark.redis
async def test_the_hub_works_on_the_pub_sub_layer_across_an_idle_restart(
    public_room, alice, bob, settings
):
    """With PARLEY_CHANNEL_LAYER=pubsub: delivery works, and after the last socket leaves
    (the hub stops, its channel ends) the next socket gets a working subscription again."""
    core = settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": core["CONFIG"]["prefix"] + "ps"},
        }
    }
    for body in ("first", "second"):
        socket = await joined(public_room.pk, alice)
        await database_sync_to_async(services.message_send)(room=public_room, author=bob, body=body)
        assert body in await socket.receive_from(timeout=5)
        await socket.disconnect()
        assert not fanout.hub().rooms and fanout.hub().channel is None


# --- the hub's subscriptions: hazards of concurrent joins, cancellation and refresh ---------


# Room ids of no real room: the groups these tests join never meet another test's.
ROOM = 10**9
OTHER = ROOM + 1


class Recorder:
    """A hub member that records what reaches it (not a user's socket: no identity events)."""

    user_id = None

    def __init__(self):
        self.events: asyncio.Queue = asyncio.Queue()
        self.caught_up: list[int] = []

    def offer(self, event: dict) -> None:
        self.events.put_nowait(event)

    def catch_up_to(self, seq: int) -> None:
        self.caught_up.append(seq)

    async def next_html(self) -> str:
        return (await asyncio.wait_for(self.events.get(), 5))["html"]


async def members_of(layer, group: str) -> int:
    """How many channels the layer has in ``group`` (the Redis core layer or the in-memory one)."""
    if hasattr(layer, "_group_key"):
        return await asyncio.to_thread(group_members_of_key, layer._group_key(group))
    return len(layer.groups.get(group, {}))


def group_members_of_key(key) -> int:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL).zcard(key)


def change(room_id: int, html: str) -> dict:
    return {"type": "room.change", "room": room_id, "id": 1, "seq": 1, "html": html}


class GatedLayer:
    """The real layer, except that ``group_add`` of the groups in ``held`` waits for ``gate``
    (``entered`` is set once one is waiting)."""

    def __init__(self, layer, held=()):
        self.layer = layer
        self.held = set(held)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.layer, name)

    async def group_add(self, group, channel):
        if group in self.held:
            self.entered.set()
            await self.gate.wait()
        await self.layer.group_add(group, channel)


@pytest.mark.redis
async def test_two_rooms_joining_an_idle_pub_sub_hub_at_once_share_one_channel(settings):
    """On the pub/sub layer ``new_channel`` waits for a SUBSCRIBE: two first joins at the same
    moment must not each make a channel (the hub would read only one of them)."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    layer = RedisPubSubChannelLayer(hosts=[settings.REDIS_URL], prefix=f"hub-{uuid.uuid4().hex}")
    hub = fanout.Hub(layer)
    made = []
    real_new_channel = layer.new_channel

    async def counting_new_channel(*args, **kwargs):
        made.append(await real_new_channel(*args, **kwargs))
        return made[-1]

    layer.new_channel = counting_new_channel
    one, two = Recorder(), Recorder()
    await asyncio.gather(hub.join(ROOM, one), hub.join(OTHER, two))
    assert len(made) == 1
    await layer.group_send(realtime.room_group(ROOM), change(ROOM, "<to one>"))
    await layer.group_send(realtime.room_group(OTHER), change(OTHER, "<to two>"))
    assert await one.next_html() == "<to one>"
    assert await two.next_html() == "<to two>"
    await hub.leave(ROOM, one)
    await hub.leave(OTHER, two)
    await layer.flush()


async def test_a_cancelled_first_joiner_does_not_break_the_others_joining_the_room():
    layer = GatedLayer(get_channel_layer(), held={realtime.room_group(ROOM)})
    hub = fanout.Hub(layer)
    first, second, third = Recorder(), Recorder(), Recorder()
    first_join = asyncio.ensure_future(hub.join(ROOM, first))
    await layer.entered.wait()  # the first joiner is subscribing the process to the room
    second_join = start_eagerly(hub.join(ROOM, second))  # waits for that subscription
    first_join.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first_join
    third_join = start_eagerly(hub.join(ROOM, third))
    layer.gate.set()
    await asyncio.wait_for(asyncio.gather(second_join, third_join), 5)
    await layer.group_send(realtime.room_group(ROOM), change(ROOM, "<after>"))
    assert await second.next_html() == "<after>"
    assert await third.next_html() == "<after>"
    # The same dispatch would have reached the cancelled joiner too: it has left.
    assert first.events.empty()
    await hub.leave(ROOM, second)
    await hub.leave(ROOM, third)
    assert not hub.rooms and not hub.tasks


async def test_a_cancelled_only_joiner_leaves_the_hub_idle_and_a_later_join_works():
    layer = GatedLayer(get_channel_layer(), held={realtime.room_group(ROOM)})
    hub = fanout.Hub(layer)
    first_join = asyncio.ensure_future(hub.join(ROOM, Recorder()))
    await layer.entered.wait()
    first_join.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first_join
    assert not hub.rooms and not hub.tasks
    layer.gate.set()
    later = Recorder()
    await asyncio.wait_for(hub.join(ROOM, later), 5)
    # The abandoned subscription undid itself before this one ran: one channel in the group.
    assert await members_of(layer.layer, realtime.room_group(ROOM)) == 1
    await layer.group_send(realtime.room_group(ROOM), change(ROOM, "<later>"))
    assert await later.next_html() == "<later>"
    await hub.leave(ROOM, later)
    assert await members_of(layer.layer, realtime.room_group(ROOM)) == 0


@transactional_db
async def test_a_refresh_of_many_rooms_does_not_hold_up_a_join():
    """The periodic refresh re-adds every group; a socket joining another room meanwhile
    must not wait behind all of them."""
    rooms = range(ROOM, ROOM + 500)
    layer = GatedLayer(get_channel_layer())
    hub = fanout.Hub(layer)
    members = {room_id: Recorder() for room_id in rooms}
    for room_id, member in members.items():
        await hub.join(room_id, member)
    layer.held = {realtime.room_group(room_id) for room_id in rooms}
    refreshing = asyncio.ensure_future(hub.refresh())
    await layer.entered.wait()  # the refresh is re-adding a group, and waits there
    newcomer = Recorder()
    joining = asyncio.ensure_future(hub.join(ROOM + 500, newcomer))
    done, _ = await asyncio.wait({joining, refreshing}, timeout=5, return_when="FIRST_COMPLETED")
    assert done == {joining}
    await layer.group_send(realtime.room_group(ROOM + 500), change(ROOM + 500, "<new room>"))
    assert await newcomer.next_html() == "<new room>"
    layer.gate.set()
    await asyncio.wait_for(refreshing, 30)
    for room_id, member in members.items():
        await hub.leave(room_id, member)
    await hub.leave(ROOM + 500, newcomer)
    assert not hub.rooms and not hub.tasks


async def test_events_are_dispatched_by_kind_and_the_old_name_still_works():
    hub = fanout.Hub(get_channel_layer())
    member = Recorder()
    await hub.join(ROOM, member)
    layer = hub.layer
    await layer.group_send(
        realtime.room_group(ROOM), {**change(ROOM, "<old name>"), "type": "chat.message"}
    )
    assert await member.next_html() == "<old name>"
    await layer.group_send(realtime.room_group(ROOM), {"type": "something.else", "room": 1})
    await layer.group_send(realtime.room_group(ROOM), change(ROOM, "<new name>"))
    assert await member.next_html() == "<new name>"  # the unknown kind was skipped
    await hub.leave(ROOM, member)
