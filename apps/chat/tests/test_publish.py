"""Publishing after commit never makes the committing thread wait on the channel layer, and
only the two realtime modules talk to the channel layer at all."""

import asyncio
import pathlib

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from apps.chat import realtime, services


@pytest.fixture(autouse=True)
def _unbound_loop(monkeypatch):
    """Each test binds its own loop; none is left bound for the next."""
    monkeypatch.setattr(realtime, "_loop", None)


async def sent_all(timeout: float = 10) -> None:
    async def drained():
        while realtime.pending_sends():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(drained(), timeout)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_hanging_channel_layer_does_not_hold_the_database_thread(
    public_room, alice, monkeypatch
):
    """group_send that never returns (a hung Redis): message_send still returns, and the next
    database call on the same (single, thread-sensitive) database thread runs at once."""
    layer = get_channel_layer()
    released = asyncio.Event()
    started = asyncio.Event()

    async def hanging_group_send(group, event):
        started.set()
        await released.wait()

    monkeypatch.setattr(layer, "group_send", hanging_group_send)
    realtime.bind_loop()
    send = database_sync_to_async(services.message_send)
    # A deadline, not a sleep: with a blocking publish this would wait for ever.
    result = await asyncio.wait_for(send(room=public_room, author=alice, body="hi"), timeout=10)
    assert result.created
    await asyncio.wait_for(started.wait(), timeout=10)
    assert realtime.pending_sends() == 1
    second = await asyncio.wait_for(send(room=public_room, author=alice, body="again"), 10)
    assert second.message.seq == 2
    released.set()
    await sent_all()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_failed_send_is_logged_and_forgotten(public_room, alice, monkeypatch, caplog):
    layer = get_channel_layer()

    async def unreachable(group, event):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(layer, "group_send", unreachable)
    realtime.bind_loop()
    await database_sync_to_async(services.message_send)(room=public_room, author=alice, body="x")
    await sent_all()
    assert "not published: channel layer unreachable" in caplog.text


@pytest.mark.asyncio
async def test_a_burst_of_events_reaches_the_group_in_the_order_it_was_published():
    """Sends of one group go out one after the other: concurrent ones would overtake each
    other in Redis, and each event ahead of its predecessor costs every socket of the room a
    database read of the gap."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = "room-987654321"
    await layer.group_add(group, channel)
    realtime.bind_loop()

    def burst():
        for seq in range(1, 61):
            realtime.publish(group, {"type": "test.event", "seq": seq}, lost=f"event {seq}")

    await asyncio.to_thread(burst)
    received = [(await asyncio.wait_for(layer.receive(channel), 10))["seq"] for _ in range(60)]
    await layer.group_discard(group, channel)
    assert received == list(range(1, 61))
    assert realtime.pending_sends() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_slow_send_is_logged_with_what_waited_behind_it(
    public_room, alice, monkeypatch, caplog
):
    monkeypatch.setattr(realtime, "SLOW_SEND_SECONDS", -1.0)  # every send counts as slow
    realtime.bind_loop()
    await database_sync_to_async(services.message_send)(room=public_room, author=alice, body="x")
    await sent_all()
    assert f"publishing to room-{public_room.pk} took" in caplog.text


def test_only_the_realtime_modules_touch_the_channel_layer():
    root = pathlib.Path(__file__).resolve().parents[3] / "apps"
    users = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "tests" not in path.parts
        and ("channels.layers" in path.read_text() or "get_channel_layer" in path.read_text())
    )
    assert users == ["chat/fanout.py", "chat/realtime.py"]
