"""A message POSTed to the API, and an edit, delete or reaction made through it, is published
on commit, so websocket clients see it live."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.chat import services
from apps.chat.consumers import RoomConsumer
from apps.chat.models import Message


@pytest.fixture
async def listening_bob(bob, public_room):
    """Bob's websocket in the public room. Afterwards, the worker thread's database connection
    (opened by sync_to_async calls) is closed so the test database can be dropped."""
    communicator = WebsocketCommunicator(RoomConsumer.as_asgi(), f"/ws/chat/room/{public_room.pk}/")
    communicator.scope["user"] = bob
    communicator.scope["url_route"] = {"kwargs": {"pk": public_room.pk}}
    connected, _ = await communicator.connect()
    assert connected
    yield communicator
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()


async def _alice_api_client(alice) -> APIClient:
    _token, secret = await sync_to_async(tokens.token_create)(user=alice, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.mark.django_db(transaction=True)  # on_commit callbacks need real commits
async def test_message_posted_to_the_api_reaches_a_websocket_client_in_the_room(
    alice, public_room, listening_bob
):
    client = await _alice_api_client(alice)

    response = await sync_to_async(client.post)(
        f"/api/rooms/{public_room.pk}/messages/", {"body": "hello over REST"}, format="json"
    )

    assert response.status_code == 201
    frame = await listening_bob.receive_from(timeout=5)
    assert f'id="message-{response.json()["id"]}"' in frame
    assert "hello over REST" in frame


@pytest.mark.django_db(transaction=True)
async def test_an_idempotent_api_retry_is_not_broadcast_twice(alice, public_room, listening_bob):
    client = await _alice_api_client(alice)
    payload = {"body": "once", "client_id": "6f1c1d6e-3f0b-4a8e-9d55-0b9a4c1c2f10"}
    url = f"/api/rooms/{public_room.pk}/messages/"

    first = await sync_to_async(client.post)(url, payload, format="json")
    retry = await sync_to_async(client.post)(url, payload, format="json")

    assert (first.status_code, retry.status_code) == (201, 200)
    assert f'id="message-{first.json()["id"]}"' in await listening_bob.receive_from(timeout=5)
    assert await listening_bob.receive_nothing(timeout=0.3)


async def _receive_article(communicator, message_id: int) -> str:
    """The next frame that carries this message's article (a socket may get others first)."""
    while True:
        frame = await communicator.receive_from(timeout=5)
        if f'id="message-{message_id}"' in frame:
            return frame


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "tail", "payload", "status", "shows"),
    [
        ("patch", "", {"body": "edited over **REST**"}, 200, "<strong>REST</strong>"),
        ("delete", "", None, 204, "data-deleted"),
        ("post", "reactions/", {"emoji": "🎉"}, 201, 'data-emoji="🎉"'),
    ],
)
async def test_a_change_made_through_the_api_reaches_a_websocket_client_in_the_room(
    alice, public_room, listening_bob, method, tail, payload, status, shows
):
    client = await _alice_api_client(alice)
    sent = await sync_to_async(services.message_send)(room=public_room, author=alice, body="first")
    await _receive_article(listening_bob, sent.message.pk)
    url = f"/api/rooms/{public_room.pk}/messages/{sent.message.pk}/{tail}"

    call = getattr(client, method)
    response = await sync_to_async(call)(url, payload, format="json")

    assert response.status_code == status
    frame = await _receive_article(listening_bob, sent.message.pk)
    version = await sync_to_async(
        lambda: Message.objects.values_list("version", flat=True).get(pk=sent.message.pk)
    )()
    assert version == 2
    assert 'data-version="2"' in frame
    assert shows in frame
    assert await listening_bob.receive_nothing(timeout=0.3)
