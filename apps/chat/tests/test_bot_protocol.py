"""The websocket protocol as a bot uses it: sending before (or without) ``resume``, and a
``resume`` past the room's end. Each socket gets each message once, whatever it does first."""

import re
import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import consumers, delivery, fanout, services
from apps.chat.models import Message

from .helpers import joined, open_socket, send_json

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE_ID = re.compile(r'<article id="message-(\d+)"')


async def frames_until(communicator, text: str) -> list[str]:
    """Every frame the socket gets up to and including the one that contains ``text``."""
    frames = []
    while True:
        frames.append(await communicator.receive_from(timeout=5))
        if text in frames[-1]:
            return frames


def delivered_ids(frames: list[str]) -> list[int]:
    return [int(pk) for frame in frames for pk in MESSAGE_ID.findall(frame)]


def the_consumer(room_pk: int, user_id: int) -> consumers.RoomConsumer:
    (consumer,) = [c for c in fanout.hub().rooms[room_pk].members if c.user_id == user_id]
    return consumer


async def send_three_before_resume(communicator) -> list[str]:
    frames = []
    for i in range(3):
        await send_json(communicator, {"body": f"early {i}", "client_id": str(uuid.uuid4())})
    for i in range(3):
        frames += await frames_until(communicator, f"early {i}")
    return frames


@pytest.fixture
def no_hold_timer(monkeypatch):
    """The hold is released by the test (``hold_expired``), not by a 1 s timer."""
    monkeypatch.setattr(delivery, "HOLD_SECONDS", 3600)


async def test_messages_sent_before_the_hold_ends_come_back_once(public_room, alice, no_hold_timer):
    communicator, connected = await open_socket(public_room.pk, alice)
    assert connected
    frames = await send_three_before_resume(communicator)
    # The hold ends (what the 1 s timer does): the held live copies must not be sent again.
    the_consumer(public_room.pk, alice.pk).stream.hold_expired()
    await send_json(communicator, {"body": "after the hold", "client_id": str(uuid.uuid4())})
    frames += await frames_until(communicator, "after the hold")
    ids = delivered_ids(frames)
    stored = await database_sync_to_async(
        lambda: list(Message.objects.values_list("pk", flat=True))
    )()
    assert sorted(ids) == sorted(stored) and len(ids) == len(set(ids)) == 4, ids
    await communicator.disconnect()


async def test_a_resume_after_sending_does_not_replay_what_was_acknowledged(
    public_room, alice, bob, no_hold_timer
):
    communicator, connected = await open_socket(public_room.pk, alice)
    assert connected
    frames = await send_three_before_resume(communicator)
    # Someone else writes meanwhile: that one the catch-up must bring, once.
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="bob's")
    await send_json(communicator, {"type": "resume", "after_seq": 0})
    await send_json(communicator, {"body": "probe", "client_id": str(uuid.uuid4())})
    frames += await frames_until(communicator, "probe")
    ids = delivered_ids(frames)
    assert len(ids) == len(set(ids)) == 5, ids
    await communicator.disconnect()


async def test_a_resume_past_the_rooms_end_is_an_error_and_delivery_goes_on(
    public_room, alice, bob
):
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="one")
    communicator = await joined(public_room.pk, alice, after_seq=10**9)
    error = await communicator.receive_from(timeout=5)
    assert 'id="composer-error"' in error and "past the room" in error, error
    # Continued from the room's newest message: the next ones arrive, nothing is replayed.
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="two")
    frames = await frames_until(communicator, "two")
    assert "one" not in "".join(frames)
    await send_json(communicator, {"body": "mine", "client_id": str(uuid.uuid4())})
    assert len(delivered_ids(await frames_until(communicator, "mine"))) == 1
    await communicator.disconnect()
