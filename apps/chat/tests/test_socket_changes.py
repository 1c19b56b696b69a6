"""The change frames over the websocket (edit, delete, react, unreact, reply_to), and catch-up
of changes: every socket gets each change once, in version order, and a resume answers with
the current state of what changed after N."""

import re
import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import services
from apps.chat.models import Message

from .helpers import assert_alive, joined, send_json

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def versions(html: str) -> list[tuple[str, str]]:
    """(article id, data-version) of every article in a frame, in frame order."""
    return re.findall(r'<article id="(message-\d+)" data-seq="\d+" data-version="(\d+)"', html)


send = database_sync_to_async(services.message_send)


async def test_an_edit_over_the_socket_reaches_every_socket_of_the_room_once(
    public_room, alice, bob
):
    message = (await send(room=public_room, author=alice, body="draft")).message
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    await send_json(a, {"type": "edit", "id": message.pk, "body": "final **text**"})
    for socket in (a, b):
        html = await socket.receive_from(timeout=5)
        assert versions(html) == [(f"message-{message.pk}", "2")]
        assert "<strong>text</strong>" in html and "data-edited=" in html
    await assert_alive(b, "after")  # the next frame b gets is its own message: no repeat
    assert "after" in await a.receive_from(timeout=5)
    await a.disconnect()
    await b.disconnect()


@pytest.mark.parametrize(
    "frame, expected",
    [
        ({"type": "edit", "body": "x"}, "must be a message id"),
        ({"type": "edit", "id": "nope", "body": "x"}, "must be a message id"),
        ({"type": "edit", "id": 999999, "body": "x"}, "No such message"),
        ({"type": "edit", "id": "MINE", "body": ""}, "Type a message first"),
        ({"type": "edit", "id": "THEIRS", "body": "x"}, "only edit your own"),
        ({"type": "edit", "id": "MINE", "body": "x" * 4001}, "4000"),
        ({"type": "delete", "id": "THEIRS"}, "only delete your own"),
        ({"type": "react", "id": "MINE", "emoji": "not-an-emoji"}, "not one of the reactions"),
        ({"type": "react", "id": "MINE", "emoji": ["👍"]}, "not one of the reactions"),
        ({"type": "message", "body": "re", "reply_to": "THEIRS-ELSEWHERE"}, "reply to"),
    ],
)
async def test_a_refused_change_is_an_error_for_the_sender_only_and_writes_nothing(
    public_room, alice, bob, frame, expected
):
    mine = (await send(room=public_room, author=bob, body="mine")).message
    theirs = (await send(room=public_room, author=alice, body="theirs")).message
    other = await database_sync_to_async(services.room_create)(name="elsewhere", creator=alice)
    elsewhere = (await send(room=other, author=alice, body="elsewhere")).message
    ids = {"MINE": mine.pk, "THEIRS": theirs.pk, "THEIRS-ELSEWHERE": elsewhere.pk}
    frame = {key: ids.get(value, value) if isinstance(value, str) else value
             for key, value in frame.items()}  # fmt: skip
    before = await database_sync_to_async(
        lambda: list(Message.objects.order_by("pk").values_list("version", "body"))
    )()
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    await send_json(b, {**frame, "client_id": str(uuid.uuid4())})
    html = await b.receive_from(timeout=5)
    assert 'id="composer-error"' in html and expected in html
    after = await database_sync_to_async(
        lambda: list(Message.objects.order_by("pk").values_list("version", "body"))
    )()
    assert after == before
    await assert_alive(b)
    assert "still here" in await a.receive_from(timeout=5)  # a got no error, only this
    await a.disconnect()
    await b.disconnect()


async def test_react_and_unreact_toggle_the_reaction_for_everyone(public_room, alice, bob):
    message = (await send(room=public_room, author=alice, body="vote")).message
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    await send_json(b, {"type": "react", "id": message.pk, "emoji": "👍"})
    for socket in (a, b):
        html = await socket.receive_from(timeout=5)
        assert f'data-users="{bob.pk}"' in html and versions(html)[0][1] == "2"
    await send_json(b, {"type": "unreact", "id": message.pk, "emoji": "👍"})
    for socket in (a, b):
        html = await socket.receive_from(timeout=5)
        assert "data-users" not in html and versions(html)[0][1] == "3"
    await a.disconnect()
    await b.disconnect()


async def test_a_reply_frame_stores_the_reply_and_shows_the_quote(public_room, alice, bob):
    original = (await send(room=public_room, author=alice, body="question?")).message
    b = await joined(public_room.pk, bob)
    client_id = str(uuid.uuid4())
    await send_json(b, {"body": "answer", "client_id": client_id, "reply_to": original.pk})
    html = await b.receive_from(timeout=5)
    assert f'data-reply-to="{original.pk}"' in html and "question?" in html
    reply = await database_sync_to_async(Message.objects.get)(client_id=client_id)
    assert reply.reply_to_id == original.pk
    await b.disconnect()


async def test_a_resume_brings_the_current_state_of_what_changed_each_once_in_one_frame(
    public_room, alice, bob, unlimited
):
    messages = [
        (await send(room=public_room, author=alice, body=f"m{i}")).message for i in range(5)
    ]
    seen = 5  # the client holds m0..m4 at versions 1..5
    edit = database_sync_to_async(services.message_edit)
    await edit(room=public_room, user=alice, message_id=messages[1].pk, body="m1 v2")
    await edit(room=public_room, user=alice, message_id=messages[1].pk, body="m1 v3")
    await database_sync_to_async(services.message_delete)(
        room=public_room, user=alice, message_id=messages[3].pk
    )
    await database_sync_to_async(services.reaction_add)(
        room=public_room, user=bob, message_id=messages[0].pk, emoji="🎉"
    )
    new = (await send(room=public_room, author=bob, body="new one")).message
    b = await joined(public_room.pk, bob, after_seq=seen)
    html = await b.receive_from(timeout=5)
    assert versions(html) == [
        (f"message-{messages[1].pk}", "7"),
        (f"message-{messages[3].pk}", "8"),
        (f"message-{messages[0].pk}", "9"),
        (f"message-{new.pk}", "10"),
    ]
    assert "m1 v3" in html and "m1 v2" not in html and "m3" not in html
    await assert_alive(b)  # nothing else was queued before this
    await b.disconnect()
