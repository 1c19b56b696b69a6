"""The room websocket, driven through the real ASGI stack (origin check → session → router).

With REDIS_URL set (CI) these run on the real Redis channel layer; otherwise in memory."""

import json
import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import services
from apps.chat.models import Message

# Shared with the other socket test modules (apps/chat/tests/helpers.py).
from .helpers import joined, message_count, open_socket, send_json

pytestmark = pytest.mark.django_db(transaction=True)


async def test_both_members_receive_the_message_fragment_escaped(public_room, alice, bob):
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    await send_json(a, {"body": "<script>alert(1)</script>", "client_id": str(uuid.uuid4())})
    for communicator in (a, b):
        html = await communicator.receive_from(timeout=5)
        message = await database_sync_to_async(Message.objects.get)()
        assert f'id="message-{message.pk}"' in html
        assert 'data-seq="1"' in html
        assert 'hx-swap-oob="beforeend"' in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html
    assert message.author_id == alice.pk
    await a.disconnect()
    await b.disconnect()


async def test_the_author_comes_from_the_session_never_the_payload(public_room, alice, bob):
    a = await joined(public_room.pk, alice)
    await send_json(a, {"body": "hi", "author": bob.pk, "author_id": bob.pk})
    await a.receive_from(timeout=5)
    message = await database_sync_to_async(Message.objects.get)()
    assert message.author_id == alice.pk
    await a.disconnect()


async def test_an_outsider_is_closed_with_4404_before_any_frame(private_room, carol):
    communicator, connected = await open_socket(private_room.pk, carol)
    assert connected  # accepted, then closed: htmx does not retry a 4xxx close
    output = await communicator.receive_output(timeout=5)
    assert output == {"type": "websocket.close", "code": 4404}
    await communicator.disconnect()  # let the application finish before the loop closes


async def test_a_missing_room_is_closed_with_4404(alice):
    communicator, _ = await open_socket(987654, alice)
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
    await communicator.disconnect()


async def test_an_anonymous_socket_is_closed_with_4401_before_any_frame(public_room):
    communicator, connected = await open_socket(public_room.pk, None)
    assert connected
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()


async def test_a_foreign_origin_is_refused(public_room, alice):
    communicator, connected = await open_socket(
        public_room.pk, alice, origin=(b"origin", b"https://evil.example")
    )
    assert not connected


async def test_a_missing_origin_is_refused(public_room, alice):
    communicator, connected = await open_socket(public_room.pk, alice, origin=None)
    assert not connected


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        json.dumps(["a", "list"]),
        json.dumps({"body": ""}),
        json.dumps({"body": "   "}),
        json.dumps({"body": "x" * 4001}),
        json.dumps({"body": 123}),
        json.dumps({"body": ["x"]}),
        json.dumps({"body": None}),
        json.dumps({"body": "ok", "client_id": "nope"}),
        json.dumps({"type": "launch-missiles"}),
        json.dumps({"type": "resume", "after_seq": -1}),
        json.dumps({"type": "resume", "after_seq": "abc"}),
        "x" * 20000,
    ],
    ids=[
        "not-json",
        "json-list",
        "empty",
        "blank",
        "4001-chars",
        "int-body",
        "list-body",
        "null-body",
        "bad-client-id",
        "unknown-type",
        "negative-seq",
        "text-seq",
        "huge-frame",
    ],
)
async def test_bad_frames_get_an_error_fragment_for_the_sender_only(public_room, alice, bob, frame):
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    await a.send_to(text_data=frame)
    html = await a.receive_from(timeout=5)
    assert 'id="composer-error"' in html and 'hx-swap-oob="true"' in html
    assert 'role="alert"' in html
    assert await b.receive_nothing(timeout=0.3)
    assert await message_count() == 0
    # The socket is still alive and usable.
    await send_json(a, {"body": "still here"})
    assert "still here" in await a.receive_from(timeout=5)
    await a.disconnect()
    await b.disconnect()


async def test_a_binary_frame_gets_an_error(public_room, alice):
    a = await joined(public_room.pk, alice)
    await a.send_to(bytes_data=b"\x00\x01")
    assert 'id="composer-error"' in await a.receive_from(timeout=5)
    await a.disconnect()


async def test_a_retried_client_id_is_acknowledged_by_name_once_the_socket_has_it(
    public_room, alice, bob
):
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    payload = {"body": "only once", "client_id": str(uuid.uuid4())}
    acks = []
    for _ in range(3):
        await send_json(a, payload)
        acks.append(await a.receive_from(timeout=5))
    message = await database_sync_to_async(Message.objects.get)()
    assert f'data-client-id="{payload["client_id"]}"' in acks[0] and "only once" in acks[0]
    # The socket has the article: the retries name it instead of sending it again.
    ack = (
        f'<div id="message-ack" hx-swap-oob="true" data-client-id="{payload["client_id"]}" '
        f'data-message-id="{message.pk}" hidden></div>'
    )
    assert acks[1] == acks[2] == ack
    assert await message_count() == 1
    await b.receive_from(timeout=5)  # the one broadcast
    assert await b.receive_nothing(timeout=0.3)  # retries are not re-broadcast
    await a.disconnect()
    await b.disconnect()


async def test_resume_replays_missed_messages_in_order(public_room, alice, bob, unlimited):
    for i in range(1, 6):
        await database_sync_to_async(services.message_send)(
            room=public_room, author=bob, body=f"m{i}"
        )
    a = await joined(public_room.pk, alice)
    await send_json(a, {"type": "resume", "after_seq": 2})
    html = await a.receive_from(timeout=5)
    positions = [html.index(f'data-seq="{seq}"') for seq in (3, 4, 5)]
    assert positions == sorted(positions)
    assert 'data-seq="2"' not in html
    await send_json(a, {"type": "resume", "after_seq": 5})
    assert await a.receive_nothing(timeout=0.3)  # nothing missed, nothing sent
    await a.disconnect()


async def test_resume_past_the_cap_asks_the_page_to_reload(
    public_room, alice, bob, monkeypatch, unlimited
):
    from apps.chat import delivery

    monkeypatch.setattr(delivery, "RESUME_CAP", 3)
    for i in range(5):
        await database_sync_to_async(services.message_send)(
            room=public_room, author=bob, body=f"m{i}"
        )
    a = await joined(public_room.pk, alice)
    await send_json(a, {"type": "resume", "after_seq": 0})
    html = await a.receive_from(timeout=5)
    assert 'id="chat-reload"' in html and 'data-reload="true"' in html
    await a.disconnect()


async def test_a_rate_limited_sender_gets_an_error_and_nothing_is_written(
    public_room, alice, settings
):
    settings.PARLEY_MESSAGE_RATE = (1, 60)
    a = await joined(public_room.pk, alice)
    await send_json(a, {"body": "first"})
    await a.receive_from(timeout=5)
    await send_json(a, {"body": "second"})
    html = await a.receive_from(timeout=5)
    assert 'id="composer-error"' in html and "too fast" in html
    assert await message_count() == 1
    await a.disconnect()


async def test_catch_up_goes_before_live_messages_and_nothing_twice(
    public_room, alice, bob, unlimited
):
    """A message missed before connecting and one arriving live before the client's resume:
    the resume answer carries both, in order, and the held live copy is not sent again."""
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="before")
    a, _ = await open_socket(public_room.pk, alice)
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="live")
    await send_json(a, {"type": "resume", "after_seq": 0})
    html = await a.receive_from(timeout=5)
    assert html.index('data-seq="1"') < html.index('data-seq="2"')
    assert await a.receive_nothing(timeout=0.5)
    await a.disconnect()


async def test_a_client_that_never_resumes_still_gets_live_messages(public_room, alice, bob):
    a, _ = await open_socket(public_room.pk, alice)
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="hi")
    assert 'data-seq="1"' in await a.receive_from(timeout=5)
    await a.disconnect()


async def test_a_message_the_channel_layer_dropped_is_filled_in_from_the_database(
    public_room, alice, bob, monkeypatch, unlimited
):
    """The layer is at-most-once: when seq 2 never arrives but 3 does, the socket reads 2
    from the database and sends 2 then 3."""
    from apps.chat import realtime

    a = await joined(public_room.pk, alice)
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="one")
    assert 'data-seq="1"' in await a.receive_from(timeout=5)
    real_publish = realtime._publish_change
    monkeypatch.setattr(realtime, "_publish_change", lambda change: None)
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="lost")
    monkeypatch.setattr(realtime, "_publish_change", real_publish)
    await database_sync_to_async(services.message_send)(room=public_room, author=bob, body="three")
    first, second = await a.receive_from(timeout=5), await a.receive_from(timeout=5)
    assert 'data-seq="2"' in first and "lost" in first
    assert 'data-seq="3"' in second
    await a.disconnect()


async def test_a_trailing_dropped_message_arrives_on_the_next_tick(
    public_room, alice, bob, monkeypatch
):
    from apps.chat import fanout, realtime

    monkeypatch.setattr(fanout, "TICK_SECONDS", 0.2)
    a = await joined(public_room.pk, alice)
    monkeypatch.setattr(realtime, "_publish_change", lambda change: None)
    await database_sync_to_async(services.message_send)(
        room=public_room, author=bob, body="dropped"
    )
    html = await a.receive_from(timeout=5)
    assert 'data-seq="1"' in html and "dropped" in html
    await a.disconnect()


async def test_an_error_names_the_client_id_it_refuses(public_room, alice):
    a = await joined(public_room.pk, alice)
    await send_json(a, {"body": "", "client_id": "c0ffee00-0000-4000-8000-000000000000"})
    html = await a.receive_from(timeout=5)
    assert 'data-client-id="c0ffee00-0000-4000-8000-000000000000"' in html
    await a.disconnect()


async def test_an_unreachable_channel_layer_at_connect_says_try_again_later(
    public_room, alice, monkeypatch
):
    """Redis down during the handshake: accept and close with 1013, which clients retry,
    instead of failing the handshake with HTTP 500."""
    from channels.layers import get_channel_layer
    from redis.exceptions import ConnectionError as RedisConnectionError

    layer = get_channel_layer()

    async def unreachable(*args, **kwargs):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(layer, "group_add", unreachable)
    communicator, connected = await open_socket(public_room.pk, alice)
    assert connected
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 1013}
    await communicator.disconnect()
