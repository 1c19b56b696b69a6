"""Per-process fan-out: one group member per process, no task per recipient, a stalled socket
holds up nobody, and a forgotten subscription is restored from the database's point of view."""

import asyncio
import contextvars

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from apps.chat import fanout, realtime, services
from apps.chat.consumers import RoomConsumer

from .helpers import joined

# --- start_eagerly --------------------------------------------------------------------------


async def test_a_coroutine_that_does_not_wait_finishes_inside_the_call():
    steps = []

    async def quick():
        steps.append("ran")

    assert fanout.start_eagerly(quick()) is None
    assert steps == ["ran"]


async def test_a_coroutine_that_waits_is_carried_on_by_a_task_with_its_result():
    gate = asyncio.get_running_loop().create_future()
    steps = []

    async def slow():
        steps.append("before")
        value = await gate
        await asyncio.sleep(0)
        steps.append("after")
        return value * 2

    task = fanout.start_eagerly(slow())
    assert steps == ["before"]
    gate.set_result(21)
    assert await task == 42
    assert steps == ["before", "after"]


async def test_an_error_from_the_awaited_future_reaches_the_coroutine():
    gate = asyncio.get_running_loop().create_future()

    async def catches():
        try:
            await gate
        except KeyError:
            return "caught"

    task = fanout.start_eagerly(catches())
    gate.set_exception(KeyError("x"))
    assert await task == "caught"


async def test_eager_code_cannot_change_the_callers_context_variables():
    var = contextvars.ContextVar("var", default="caller")
    gate = asyncio.get_running_loop().create_future()

    async def sets():
        var.set("eager")
        await gate
        return var.get()

    task = fanout.start_eagerly(sets())
    assert var.get() == "caller"
    gate.set_result(None)
    assert await task == "eager"


async def test_cancelling_the_carrying_task_cancels_the_coroutine():
    gate = asyncio.get_running_loop().create_future()
    seen = []

    async def waits():
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = fanout.start_eagerly(waits())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"] and gate.cancelled()


# --- a consumer's ordered queue, without a server ------------------------------------------


def bare_consumer(send) -> RoomConsumer:
    consumer = RoomConsumer()
    consumer.cursor, consumer.jobs, consumer.held = 0, [], []
    consumer.base_send = send
    return consumer


def event(seq: int) -> dict:
    """A live event as the hub hands it over (with its ASGI frame built)."""
    html = f"<m{seq}>"
    return {
        "type": "chat.message",
        "room": 1,
        "id": seq,
        "seq": seq,
        "html": html,
        "frame": realtime.websocket_frame(html),
    }


async def test_a_stalled_socket_holds_up_no_other_socket_and_keeps_its_order():
    stalled_sent, quick_sent = [], []
    unblock = asyncio.Event()

    async def stalled_send(message):
        await unblock.wait()  # the client's buffer is full
        stalled_sent.append(message["text"])

    async def quick_send(message):
        quick_sent.append(message["text"])

    stalled, quick = bare_consumer(stalled_send), bare_consumer(quick_send)
    hub = fanout.Hub(layer=None)
    hub.rooms[1] = fanout._Room(asyncio.get_running_loop())
    hub.rooms[1].members.update({stalled, quick})
    for seq in (1, 2, 3):
        hub.dispatch(event(seq))
    # Delivered inside dispatch: no task, no wait.
    assert quick_sent == ["<m1>", "<m2>", "<m3>"] and quick.runner is None
    assert stalled_sent == [] and len(stalled.jobs) == 2
    unblock.set()
    await stalled.runner
    assert stalled_sent == ["<m1>", "<m2>", "<m3>"] and stalled.cursor == 3


async def test_a_socket_whose_send_failed_gets_nothing_more_queued():
    """A failed send means the client has gone (uvicorn raises ClientDisconnected);
    disconnect() follows, and until then no work piles up for the socket."""
    sent = []

    async def gone(message):
        sent.append(message["text"])
        raise OSError("client disconnected")

    consumer = bare_consumer(gone)
    consumer.offer(event(1))
    consumer.offer(event(3))  # would need a database gap fill
    consumer.catch_up_to(5)
    assert sent == ["<m1>"] and consumer.closed
    assert consumer.runner is None and consumer.jobs == []


async def test_a_failed_send_inside_the_queue_closes_the_socket_too():
    gate = asyncio.Event()
    sent = []

    async def slow_then_gone(message):
        sent.append(message["text"])
        if len(sent) == 1:
            await gate.wait()
            return
        raise OSError("client disconnected")

    consumer = bare_consumer(slow_then_gone)
    consumer.offer(event(1))  # waits: 2 and 3 queue behind it
    consumer.offer(event(2))
    consumer.offer(event(3))
    gate.set()
    while consumer.runner is not None:
        await asyncio.sleep(0)
    assert sent == ["<m1>", "<m2>"] and consumer.closed and consumer.jobs == []


async def test_a_socket_that_never_drains_drops_its_backlog_beyond_the_limit(monkeypatch):
    monkeypatch.setattr("apps.chat.consumers.BACKLOG_MAX", 5)
    never = asyncio.Event()

    async def stuck_send(message):
        await never.wait()

    consumer = bare_consumer(stuck_send)
    for seq in range(1, 100):
        consumer.offer(event(seq))
    assert len(consumer.jobs) == 5  # memory stays bounded; the database has the rest
    consumer.runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer.runner


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
