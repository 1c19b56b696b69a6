"""A websocket answers its own user in their language (issue 14): the profile's saved choice,
else the handshake's Accept-Language; a broadcast fragment stays in the site's language."""

import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import services
from apps.profiles.models import Profile
from project.asgi import application

from .helpers import HOST, ORIGIN, Socket, joined, send_json, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _unlimited(unlimited):
    return unlimited


@database_sync_to_async
def _set_language(user, language):
    Profile.objects.filter(user=user).update(language=language)


async def _texts_until(communicator, needle, limit=20) -> str:
    seen = ""
    for _ in range(limit):
        seen += await communicator.receive_from(timeout=5)
        if needle in seen:
            break
    return seen


async def test_an_error_fragment_is_in_the_saved_language(public_room, alice):
    await _set_language(alice, "ru")
    socket = await joined(public_room.pk, alice)

    await socket.send_to(text_data="{not json")

    assert "Это не корректный JSON." in await _texts_until(socket, "JSON")
    await socket.disconnect()


async def test_without_a_saved_choice_the_handshakes_accept_language_decides(public_room, alice):
    cookie = await session_cookie(alice)
    headers = [HOST, ORIGIN, (b"cookie", f"sessionid={cookie}".encode())]
    russian = Socket(
        application,
        f"/ws/chat/room/{public_room.pk}/",
        headers=[*headers, (b"accept-language", b"ru")],
    )
    assert (await russian.connect(timeout=5))[0]

    await send_json(russian, {"body": "", "client_id": str(uuid.uuid4())})

    assert "Сначала напишите сообщение." in await _texts_until(russian, "сообщение")
    await russian.disconnect()


async def test_a_broadcast_fragment_does_not_carry_the_senders_language(public_room, alice, bob):
    await _set_language(alice, "ru")
    first = await database_sync_to_async(services.message_send)(
        room=public_room, author=bob, body="first"
    )
    watcher = await joined(public_room.pk, bob)
    sender = await joined(public_room.pk, alice)

    await send_json(
        sender, {"body": "привет", "client_id": str(uuid.uuid4()), "reply_to": first.message.pk}
    )

    fragment = await _texts_until(watcher, "привет")
    assert "привет" in fragment
    # A reply's quote, in the site's language (English), not the sender's.
    assert "In reply to" in fragment and 'title="Show the original message"' in fragment
    assert "В ответ на" not in fragment
    await sender.disconnect()
    await watcher.disconnect()
