"""Issue #8 items 6a and 8b: hostile or merely unusual frames get an answer and the socket
lives; the length rule applies to the decoded text, not to how the JSON spelled it."""

import json

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from apps.chat.models import Message

from .helpers import joined, message_count, send_json

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_still_usable(communicator) -> None:
    await send_json(communicator, {"body": "still here"})
    assert "still here" in await communicator.receive_from(timeout=5)


@pytest.mark.parametrize("depth", [2_000, 32_000])
async def test_a_deeply_nested_frame_gets_an_error_and_the_socket_lives(
    public_room, alice, depth, caplog
):
    """json.loads raises RecursionError (not ValueError) past its stack: that used to kill
    the socket with 1011 and a traceback."""
    a = await joined(public_room.pk, alice)
    frame = "[" * depth + "]" * depth
    assert len(frame) <= settings.PARLEY_WS_MAX_FRAME  # reaches the parser
    await a.send_to(text_data=frame)
    html = await a.receive_from(timeout=5)
    assert 'id="composer-error"' in html
    await a.send_to(text_data='{"type": "message", "body": ' + "[" * 5000 + "]" * 5000 + "}")
    assert 'id="composer-error"' in await a.receive_from(timeout=5)
    await assert_still_usable(a)
    assert not [r for r in caplog.records if r.exc_info]
    await a.disconnect()


def escaped(text: str) -> str:
    """JSON with every character as a \\u escape (what json.dumps does with ensure_ascii)."""
    return json.dumps({"type": "message", "body": text, "client_id": None}, ensure_ascii=True)


@pytest.mark.parametrize(
    "text",
    ["ж" * 4000, "😀" * 4000, ("жш😀a" * 1000)],
    ids=["cyrillic", "emoji-surrogate-pairs", "mixed"],
)
async def test_a_legal_4000_character_message_in_u_escapes_is_accepted(public_room, alice, text):
    a = await joined(public_room.pk, alice)
    frame = escaped(text)
    assert len(frame) > 16 * 1024  # refused by the old frame cap
    # What htmx's ws extension adds: the HEADERS key with the trigger's details.
    data = json.loads(frame)
    data["HEADERS"] = {
        "HX-Request": "true",
        "HX-Trigger": "composer",
        "HX-Trigger-Name": None,
        "HX-Target": "composer",
        "HX-Current-URL": "http://localhost/rooms/1/",
    }
    data["client_id"] = "c0ffee00-0000-4000-8000-000000000000"
    await a.send_to(text_data=json.dumps(data))
    html = await a.receive_from(timeout=5)
    assert 'id="composer-error"' not in html
    message = await database_sync_to_async(Message.objects.get)()
    assert message.body == text
    await a.disconnect()


async def test_4001_decoded_characters_are_refused_however_they_are_spelled(public_room, alice):
    a = await joined(public_room.pk, alice)
    await a.send_to(text_data=escaped("ж" * 4001))
    html = await a.receive_from(timeout=5)
    assert 'id="composer-error"' in html and "4000" in html
    assert await message_count() == 0
    await assert_still_usable(a)
    await a.disconnect()


async def test_a_frame_over_the_cap_is_refused_and_the_socket_lives(public_room, alice):
    a = await joined(public_room.pk, alice)
    await a.send_to(text_data=json.dumps({"body": "x" * settings.PARLEY_WS_MAX_FRAME}))
    assert "too large" in await a.receive_from(timeout=5)
    await assert_still_usable(a)
    await a.disconnect()


async def test_an_unknown_json_frame_type_still_says_so(public_room, alice):
    a = await joined(public_room.pk, alice)
    await send_json(a, {"type": "wave", "body": "ж" * 4000})
    assert "Unknown frame type." in await a.receive_from(timeout=5)
    await a.disconnect()
