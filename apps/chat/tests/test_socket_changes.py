"""The change frames over the websocket (edit, delete, react, unreact, reply_to), and catch-up
of changes: every socket gets each change once, in version order, and a resume answers with
the current state of what changed after N."""

import asyncio
import re
import threading
import time
import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import consumers, services
from apps.chat.models import Message

from .helpers import (
    assert_alive,
    joined,
    message_count,
    open_socket,
    send_json,
    timeline_snapshot,
)

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
    # A reaction, so that a refused react/unreact has one to compare against.
    await database_sync_to_async(services.reaction_add)(
        room=public_room, user=bob, message_id=mine.pk, emoji="👍"
    )
    before = await timeline_snapshot()
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    await send_json(b, {**frame, "client_id": str(uuid.uuid4())})
    html = await b.receive_from(timeout=5)
    assert 'id="composer-error"' in html and expected in html
    assert await timeline_snapshot() == before  # messages, reactions and every last_seq
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


async def test_the_room_owner_deletes_another_members_message_for_everyone(public_room, alice, bob):
    theirs = (await send(room=public_room, author=bob, body="off topic")).message
    owner, member = await joined(public_room.pk, alice), await joined(public_room.pk, bob)
    await send_json(owner, {"type": "delete", "id": theirs.pk})
    for socket in (owner, member):
        html = await socket.receive_from(timeout=5)
        assert versions(html) == [(f"message-{theirs.pk}", "2")]
        assert "data-deleted" in html and "This message was deleted" in html
        assert "off topic" not in html
    stored = await database_sync_to_async(Message.objects.get)(pk=theirs.pk)
    assert stored.deleted and stored.body == "" and stored.html == ""
    await assert_alive(member, "after")  # nothing else was queued for either socket
    assert "after" in await owner.receive_from(timeout=5)
    await owner.disconnect()
    await member.disconnect()


@pytest.mark.parametrize(
    "frame, expected",
    [
        ({"type": "delete"}, "only delete your own"),
        ({"type": "edit", "body": "rewritten"}, "only edit your own"),
    ],
)
async def test_a_dm_partner_cannot_delete_or_edit_the_other_persons_message(
    private_room, alice, bob, frame, expected
):
    """In a 1:1 conversation nobody is the owner of the other's messages: bob's change of
    alice's message is an error for bob alone, and nothing is written."""
    hers = (await send(room=private_room, author=alice, body="between us")).message
    before = await timeline_snapshot()
    a, b = await joined(private_room.pk, alice), await joined(private_room.pk, bob)
    await send_json(b, {**frame, "id": hers.pk})
    html = await b.receive_from(timeout=5)
    assert 'id="composer-error"' in html and expected in html
    assert f'data-message-id="{hers.pk}"' in html
    assert await timeline_snapshot() == before
    await assert_alive(b)
    assert "still here" in await a.receive_from(timeout=5)  # alice got no error, only this
    await a.disconnect()
    await b.disconnect()


CHANGES_OF = [
    {"type": "delete", "id": "TARGET"},
    {"type": "edit", "id": "TARGET", "body": "taken over"},
    {"type": "react", "id": "TARGET", "emoji": "👍"},
    {"type": "unreact", "id": "TARGET", "emoji": "🎉"},
    {"type": "message", "body": "hello?", "client_id": "CLIENT_ID"},
]


async def _refused_socket_acts_on_nothing(room, user, code: int, target: Message) -> None:
    """The socket is accepted and closed with ``code``; the change frames it sends at once,
    before reading the close, are not acted on."""
    before = await timeline_snapshot()
    socket, connected = await open_socket(room.pk, user)
    assert connected
    for frame in CHANGES_OF:
        values = {"TARGET": target.pk, "CLIENT_ID": str(uuid.uuid4())}
        await send_json(socket, {key: values.get(value, value) for key, value in frame.items()})
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": code}
    # The application handles its input in order: once it has processed the disconnect after
    # the frames and finished, every frame was seen — and none was acted on or answered.
    await socket.disconnect()
    assert await timeline_snapshot() == before and await message_count() == 1


async def test_an_outsiders_socket_to_a_private_room_is_closed_4404_and_changes_nothing(
    private_room, alice, bob, carol
):
    hers = (await send(room=private_room, author=alice, body="between us")).message
    await database_sync_to_async(services.reaction_add)(
        room=private_room, user=bob, message_id=hers.pk, emoji="🎉"
    )
    await _refused_socket_acts_on_nothing(private_room, carol, 4404, hers)


async def test_an_anonymous_socket_is_closed_4401_and_changes_nothing(public_room, alice, bob):
    hers = (await send(room=public_room, author=alice, body="public")).message
    await database_sync_to_async(services.reaction_add)(
        room=public_room, user=bob, message_id=hers.pk, emoji="🎉"
    )
    await _refused_socket_acts_on_nothing(public_room, None, 4401, hers)


ACK = re.compile(
    r'<div id="message-ack" hx-swap-oob="true" data-client-id="([^"]*)" '
    r'data-message-id="(\d+)" hidden></div>'
)


async def test_a_retry_read_before_an_edit_went_out_does_not_take_the_version_back(
    public_room, alice, monkeypatch
):
    """A resend of a client_id reads the message (version 1); before its acknowledgement is
    queued, an edit commits and reaches the socket live (version 2). The acknowledgement must
    not be the article it read: it names the message instead."""
    a = await joined(public_room.pk, alice)
    client_id = str(uuid.uuid4())
    await send_json(a, {"body": "first", "client_id": client_id})
    first = await a.receive_from(timeout=5)
    ((article_id, version),) = versions(first)
    pk = int(article_id.removeprefix("message-"))
    assert version == "1" and f'data-client-id="{client_id}"' in first

    original = consumers._send_and_render
    edit_sent = threading.Event()

    def read_then_edit(**kwargs):
        result = original(**kwargs)  # the retry: the message as it is now, version 1
        services.message_edit(room=public_room, user=alice, message_id=pk, body="second")
        # The edit's live copy reaches the socket while this database thread still holds
        # the retry (the event loop is free meanwhile).
        deadline = time.monotonic() + 5
        while a.output_queue.empty() and time.monotonic() < deadline:
            time.sleep(0.005)
        edit_sent.set()
        return result

    monkeypatch.setattr(consumers, "_send_and_render", read_then_edit)
    await send_json(a, {"body": "first", "client_id": client_id})
    # Read nothing until the edit is out (reading would empty the queue the thread watches).
    assert await asyncio.to_thread(edit_sent.wait, 10)
    edit = await a.receive_from(timeout=5)
    assert versions(edit) == [(f"message-{pk}", "2")] and "second" in edit
    ack = await a.receive_from(timeout=5)
    assert versions(ack) == [] and ACK.fullmatch(ack).groups() == (client_id, str(pk))
    assert await message_count() == 1
    monkeypatch.undo()
    await assert_alive(a)
    await a.disconnect()


async def test_an_error_names_only_a_real_message_id(public_room, alice):
    a = await joined(public_room.pk, alice)
    for named, shown in [(True, ""), (False, ""), (7.0, ""), ("12", "12"), ("x1", ""),
                         (999999, "999999"), ("²", "")]:  # fmt: skip
        await send_json(a, {"type": "delete", "id": named})
        html = await a.receive_from(timeout=5)
        assert 'id="composer-error"' in html and f'data-message-id="{shown}"' in html, named
    await a.disconnect()
