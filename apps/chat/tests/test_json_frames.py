"""Issue 13 item 5: a room socket opened with ``?format=json`` speaks JSON frames (README, "Bots
on the websocket"; apps/chat/consumers.py). The same SocketStream as the HTML fragments: each
change once, in seq order, a resume's catch-up first (one frame per change, then
``caught_up``), gaps filled from the database, ``reset`` past RESUME_CAP, a passed retry
acknowledged by name. Full ASGI stack, on the real Redis channel layer when REDIS_URL is set."""

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.api.serializers import MessageSerializer
from apps.chat import delivery, fanout, payloads, realtime, selectors, services
from apps.chat.models import Message, Room
from project.asgi import application

from .helpers import HOST, Socket, auth_headers, joined, send_json, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _unlimited(unlimited):
    """(Long histories and many edits: the send and reaction limits are lifted.)"""


@pytest.fixture(autouse=True)
def _reactions(settings):
    settings.PARLEY_REACTION_RATE = (1_000_000, 10)


class Bot:
    """A JSON room socket with a Bearer token: no Origin, no cookie."""

    def __init__(self, communicator: Socket, secret: str):
        self.ws = communicator
        self.secret = secret

    async def frame(self, timeout: float = 5) -> dict:
        return json.loads(await self.ws.receive_from(timeout=timeout))

    async def frames_until(self, kind: str, timeout: float = 5, **fields) -> list[dict]:
        """Every frame up to and including the first of this type (and these values)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        frames = []
        while True:
            frames.append(await self.frame(max(deadline - loop.time(), 0.01)))
            last = frames[-1]
            if last["type"] == kind and all(last.get(k) == v for k, v in fields.items()):
                return frames

    async def send(self, payload) -> None:
        await send_json(self.ws, payload)

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.ws.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.ws.disconnect()


async def bot_socket(room_pk: int, user, *, secret: str | None = None, query="?format=json"):
    if secret is None:
        _token, secret = await database_sync_to_async(tokens.token_create)(user=user, name="bot")
    headers = [HOST, (b"authorization", f"Bearer {secret}".encode())]
    communicator = Socket(application, f"/ws/chat/room/{room_pk}/{query}", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return Bot(communicator, secret)


async def resumed_bot(room_pk: int, user, after_seq: int | None = None, **kwargs) -> Bot:
    """A bot socket that resumed (by default from the room's current seq) and is caught up."""
    bot = await bot_socket(room_pk, user, **kwargs)
    if after_seq is None:
        after_seq = await database_sync_to_async(selectors.room_last_seq)(room=Room(pk=room_pk))
    await bot.send({"type": "resume", "after_seq": after_seq})
    await bot.frames_until("caught_up")
    return bot


send = database_sync_to_async(services.message_send)


async def post(room, author, body: str) -> Message:
    return (await send(room=room, author=author, body=body)).message


def message_seqs(frames: list[dict]) -> list[int]:
    return [f["seq"] for f in frames if f["type"].startswith("message")]


# --- the frames ------------------------------------------------------------------------------


async def test_a_bot_sends_and_its_acknowledgement_is_the_message_frame(public_room, alice, bob):
    bot = await resumed_bot(public_room.pk, alice)
    page = await joined(public_room.pk, bob)
    client_id = str(uuid.uuid4())
    await bot.send({"body": "hello <b>world</b>", "client_id": client_id})

    ack = await bot.frame()

    message = await Message.objects.aget()
    assert ack["type"] == "message" and ack["room"] == public_room.pk and ack["seq"] == 1
    assert ack["message"]["client_id"] == client_id
    assert ack["message"]["id"] == message.pk and ack["message"]["body"] == "hello <b>world</b>"
    assert ack["message"]["author"]["id"] == alice.pk
    assert await bot.nothing()  # the live copy is not sent again
    # The page's socket is unaffected: the HTML fragment, as before.
    html = await page.receive_from(timeout=5)
    assert f'id="message-{message.pk}"' in html and "&lt;b&gt;" in html
    await bot.close()
    await page.disconnect()


async def test_a_bot_receives_others_messages_and_their_changes(public_room, alice, bob):
    bot = await resumed_bot(public_room.pk, alice)
    message = await post(public_room, bob, "from bob")
    new = await bot.frame()
    assert new["type"] == "message" and new["seq"] == 1 and new["message"]["body"] == "from bob"

    await database_sync_to_async(services.message_edit)(
        room=public_room, user=bob, message_id=message.pk, body="edited"
    )
    edited = await bot.frame()
    assert (edited["type"], edited["seq"]) == ("message_changed", 2)
    assert edited["message"]["body"] == "edited" and edited["message"]["edited_at"]

    await database_sync_to_async(services.reaction_add)(
        room=public_room, user=alice, message_id=message.pk, emoji="👍"
    )
    reacted = await bot.frame()
    assert (reacted["type"], reacted["seq"]) == ("message_changed", 3)
    assert reacted["message"]["reactions"] == [{"emoji": "👍", "count": 1, "users": [alice.pk]}]

    await database_sync_to_async(services.message_delete)(
        room=public_room, user=bob, message_id=message.pk
    )
    deleted = await bot.frame()
    assert (deleted["type"], deleted["seq"]) == ("message_deleted", 4)
    assert deleted["message"]["deleted"] is True and deleted["message"]["body"] == ""
    assert await bot.nothing()
    await bot.close()


async def test_the_bots_own_changes_are_acknowledged_on_its_socket(public_room, alice):
    bot = await resumed_bot(public_room.pk, alice)
    await bot.send({"body": "mine", "client_id": str(uuid.uuid4())})
    mine = await bot.frame()
    message_id = mine["message"]["id"]
    await bot.send({"type": "edit", "id": message_id, "body": "mine, edited"})
    edited = await bot.frame()
    assert edited["type"] == "message_changed" and edited["message"]["body"] == "mine, edited"
    await bot.send({"type": "react", "id": message_id, "emoji": "🎉"})
    assert (await bot.frame())["message"]["reactions"][0]["emoji"] == "🎉"
    await bot.send({"type": "delete", "id": message_id})
    assert (await bot.frame())["type"] == "message_deleted"
    assert await bot.nothing()
    await bot.close()


async def test_a_cookie_session_may_ask_for_json_too(public_room, alice, bob):
    cookie = await session_cookie(alice)
    communicator = Socket(
        application, f"/ws/chat/room/{public_room.pk}/?format=json", headers=auth_headers(cookie)
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await send_json(communicator, {"type": "resume", "after_seq": 0})
    assert json.loads(await communicator.receive_from(timeout=5))["type"] == "caught_up"
    await post(public_room, bob, "to the cookie")
    frame = json.loads(await communicator.receive_from(timeout=5))
    assert frame["type"] == "message" and frame["message"]["body"] == "to the cookie"
    await communicator.disconnect()


async def test_json_sockets_get_no_user_stream_and_no_typing(public_room, alice, bob):
    bot = await resumed_bot(public_room.pk, alice)
    page = await joined(public_room.pk, bob)
    assert (await page.user_frame_of("sync"))["type"] == "sync"  # the page's user stream
    await send_json(page, {"type": "typing"})
    await post(public_room, bob, "hello")
    frame = await bot.frame()
    assert frame["type"] == "message"
    assert await bot.nothing(0.5)  # no typing frame, no unread frame
    assert await bot.ws.no_user_frame(0.1)
    consumer = next(c for c in fanout.hub().rooms[public_room.pk].members if c.user_id == alice.pk)
    assert consumer.user_stream is None
    await bot.close()
    await page.disconnect()


async def test_presence_frames_reach_a_json_socket(public_room, alice, bob):
    bot = await resumed_bot(public_room.pk, alice)
    await bot.send({"type": "presence-watch", "users": [bob.pk]})
    frame = await bot.frame()
    assert frame["type"] == "presence" and str(bob.pk) in frame["states"]
    await bot.close()


async def test_an_unknown_format_is_closed_with_4400(public_room, alice):
    bot = await bot_socket(public_room.pk, alice, query="?format=xml")
    assert await bot.ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4400}
    await bot.close()


async def test_format_html_is_the_default(public_room, alice, bob):
    bot = await bot_socket(public_room.pk, alice, query="?format=html")
    await bot.send({"type": "resume", "after_seq": 0})
    await post(public_room, bob, "as html")
    assert "<article" in await bot.ws.receive_from(timeout=5)
    await bot.close()


# --- resume, retries, gaps, reset -----------------------------------------------------------


async def test_resume_after_n_sends_exactly_the_missed_changes_once_then_caught_up(
    public_room, alice, bob
):
    messages = [await post(public_room, bob, f"m{i}") for i in range(1, 6)]  # seqs 1..5
    # Changes after 3: message 2 edited (6), message 4 reacted to (7), message 5 deleted (8).
    await database_sync_to_async(services.message_edit)(
        room=public_room, user=bob, message_id=messages[1].pk, body="m2 edited"
    )
    await database_sync_to_async(services.reaction_add)(
        room=public_room, user=alice, message_id=messages[3].pk, emoji="👍"
    )
    await database_sync_to_async(services.message_delete)(
        room=public_room, user=bob, message_id=messages[4].pk
    )
    bot = await bot_socket(public_room.pk, alice)
    await bot.send({"type": "resume", "after_seq": 3})

    frames = await bot.frames_until("caught_up")

    assert [(f["type"], f["seq"], f["message"]["id"]) for f in frames[:-1]] == [
        ("message_changed", 6, messages[1].pk),
        ("message", 7, messages[3].pk),  # seq 4 > 3: new to the bot, although reacted to since
        ("message_deleted", 8, messages[4].pk),
    ]
    assert frames[-1] == {"type": "caught_up", "room": public_room.pk, "seq": 8}
    # Live from there, once each.
    await post(public_room, bob, "live")
    assert message_seqs([await bot.frame()]) == [9]
    await bot.send({"type": "resume", "after_seq": 9})
    assert await bot.frame() == {"type": "caught_up", "room": public_room.pk, "seq": 9}
    assert await bot.nothing()
    await bot.close()


async def test_live_messages_before_the_resume_come_after_the_catch_up_once(
    public_room, alice, bob
):
    await post(public_room, bob, "before")
    bot = await bot_socket(public_room.pk, alice)
    await post(public_room, bob, "while holding")
    await bot.send({"type": "resume", "after_seq": 0})
    frames = await bot.frames_until("caught_up")
    assert message_seqs(frames) == [1, 2] and frames[-1]["seq"] == 2
    assert await bot.nothing()
    await bot.close()


async def test_a_retried_client_id_is_stored_once_and_acknowledged_by_name(public_room, alice, bob):
    bot = await resumed_bot(public_room.pk, alice)
    other = await resumed_bot(public_room.pk, bob)
    payload = {"body": "only once", "client_id": str(uuid.uuid4())}
    answers = []
    for _ in range(3):
        await bot.send(payload)
        answers.append(await bot.frame())
    message = await Message.objects.aget()
    assert (
        answers[0]["type"] == "message"
        and answers[0]["message"]["client_id"] == (payload["client_id"])
    )
    ack = {
        "type": "ack",
        "room": public_room.pk,
        "client_id": payload["client_id"],
        "id": message.pk,
    }
    assert answers[1] == answers[2] == ack
    assert await Message.objects.acount() == 1
    assert message_seqs([await other.frame()]) == [1]  # the one broadcast
    assert await other.nothing() and await bot.nothing()
    await bot.close()
    await other.close()


async def test_a_dropped_live_event_is_filled_in_from_the_database(
    public_room, alice, bob, monkeypatch
):
    bot = await resumed_bot(public_room.pk, alice)
    await post(public_room, bob, "one")
    assert message_seqs([await bot.frame()]) == [1]
    real_publish = realtime._publish_change
    monkeypatch.setattr(realtime, "_publish_change", lambda change: None)
    await post(public_room, bob, "lost")
    monkeypatch.setattr(realtime, "_publish_change", real_publish)
    await post(public_room, bob, "three")
    first, second = await bot.frame(), await bot.frame()
    assert (first["type"], first["seq"], first["message"]["body"]) == ("message", 2, "lost")
    assert (second["seq"], second["message"]["body"]) == (3, "three")
    assert await bot.nothing()
    await bot.close()


async def test_an_event_without_a_message_object_is_read_from_the_database(
    public_room, alice, bob, monkeypatch
):
    """An older publisher's event (no ``data``, a rolling deploy): the JSON socket reads the
    change from the database instead of skipping it."""
    real_change_event = realtime.change_event

    def without_data(message):
        event = real_change_event(message)
        del event["data"]
        return event

    bot = await resumed_bot(public_room.pk, alice)
    monkeypatch.setattr(realtime, "change_event", without_data)
    await post(public_room, bob, "old style")
    frame = await bot.frame()
    assert (frame["type"], frame["seq"], frame["message"]["body"]) == ("message", 1, "old style")
    assert await bot.nothing()
    await bot.close()


async def test_a_resume_past_the_cap_gets_reset(public_room, alice, bob, monkeypatch):
    monkeypatch.setattr(delivery, "RESUME_CAP", 3)
    for i in range(5):
        await post(public_room, bob, f"m{i}")
    bot = await bot_socket(public_room.pk, alice)
    await bot.send({"type": "resume", "after_seq": 0})
    assert await bot.frame() == {"type": "reset", "room": public_room.pk, "seq": 5}
    assert await bot.frame() == {"type": "caught_up", "room": public_room.pk, "seq": 5}
    await post(public_room, bob, "after the reset")
    assert message_seqs([await bot.frame()]) == [6]
    await bot.close()


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "fields"),
    [
        ("{not json", "parse_error", {}),
        ("[1, 2]", "parse_error", {}),
        (json.dumps({"type": "nonsense"}), "invalid", {"type": ["Unknown frame type."]}),
        (json.dumps({"type": "resume", "after_seq": -1}), "invalid", {"after_seq": None}),
        (json.dumps({"body": "", "client_id": "c-1"}), "required", {}),
    ],
)
async def test_errors_are_error_frames_for_the_sender_and_the_socket_stays_open(
    public_room, alice, bob, raw, code, fields
):
    bot = await resumed_bot(public_room.pk, alice)
    other = await resumed_bot(public_room.pk, bob)
    await bot.ws.send_to(text_data=raw)

    frame = await bot.frame()

    assert frame["type"] == "error"
    error = frame["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["message"], str) and error["message"]
    if code != "required":
        assert error["code"] == code
    else:  # the service's own code for an empty message (errors.code_of)
        assert isinstance(error["code"], str) and error["code"]
        assert frame["client_id"] == "c-1"
    for field, messages in fields.items():
        assert field in error["fields"]
        if messages is not None:
            assert error["fields"][field] == messages
    if not fields:
        assert error["fields"] == {}
    assert await other.nothing()  # the sender's only
    # Still open and acting on frames.
    await bot.send({"body": "still here", "client_id": str(uuid.uuid4())})
    assert (await bot.frame())["message"]["body"] == "still here"
    await bot.close()
    await other.close()


async def test_a_refused_change_names_the_message_and_its_code(public_room, alice, bob):
    message = await post(public_room, bob, "bob's")
    bot = await resumed_bot(public_room.pk, alice)
    await bot.send({"type": "edit", "id": message.pk, "body": "not mine"})
    frame = await bot.frame()
    assert frame["type"] == "error" and frame["id"] == message.pk
    assert frame["error"]["code"] == "permission_denied"
    await bot.send({"type": "delete", "id": 987654})
    frame = await bot.frame()
    assert frame["error"]["code"] == "not_found" and frame["id"] == 987654
    await bot.close()


async def test_a_refusal_about_one_input_has_the_apis_code_and_fields(public_room, alice, bob):
    """The websocket and the API answer the same refusal with the same code and fields: a
    service code that only names its input (an unknown emoji, a reply to nothing) is
    "invalid", the error under that input."""
    message = await post(public_room, bob, "bob's")
    bot = await resumed_bot(public_room.pk, alice)
    await bot.send({"type": "react", "id": message.pk, "emoji": "not-an-emoji"})
    react = (await bot.frame())["error"]
    await bot.send({"body": "re", "reply_to": 987654, "client_id": str(uuid.uuid4())})
    reply = (await bot.frame())["error"]
    await bot.close()

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {bot.secret}")
    url = f"/api/rooms/{public_room.pk}/messages/"
    by_api_react = await database_sync_to_async(api.post)(
        f"{url}{message.pk}/reactions/", {"emoji": "not-an-emoji"}, format="json"
    )
    by_api_reply = await database_sync_to_async(api.post)(
        url, {"body": "re", "reply_to": 987654}, format="json"
    )
    assert react == by_api_react.json()["error"]
    assert react["code"] == "invalid" and list(react["fields"]) == ["emoji"]
    assert reply == by_api_reply.json()["error"]
    assert reply["code"] == "invalid" and list(reply["fields"]) == ["reply_to"]


async def test_a_rate_limited_bot_gets_throttled(public_room, alice, settings):
    settings.PARLEY_MESSAGE_RATE = (1, 60)
    bot = await resumed_bot(public_room.pk, alice)
    await bot.send({"body": "first"})
    assert (await bot.frame())["type"] == "message"
    await bot.send({"body": "second"})
    frame = await bot.frame()
    assert frame["type"] == "error" and frame["error"]["code"] == "throttled"
    assert await Message.objects.acount() == 1
    await bot.close()


async def test_revoking_the_token_closes_the_json_socket_with_4401(public_room, alice):
    token, secret = await database_sync_to_async(tokens.token_create)(user=alice, name="bot")
    bot = await resumed_bot(public_room.pk, alice, secret=secret)
    await database_sync_to_async(tokens.token_revoke)(user=alice, token_id=token.pk)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2
    while True:
        output = await bot.ws.receive_output(timeout=max(deadline - loop.time(), 0.01))
        if output["type"] != "websocket.send":
            break
    assert output == {"type": "websocket.close", "code": 4401}
    await bot.close()


# --- one definition of the message object ------------------------------------------------------


def relative(data: dict, base: str) -> dict:
    """The API's message object with site-relative URLs and no ``me``."""

    def cut(url):
        return url[len(base) :] if isinstance(url, str) and url.startswith(base) else url

    data = json.loads(json.dumps(data))
    data["author"]["avatar"] = cut(data["author"]["avatar"])
    for reaction in data["reactions"]:
        del reaction["me"]
    for attachment in data["attachments"]:
        attachment["url"] = cut(attachment["url"])
        attachment["thumbnail_url"] = cut(attachment["thumbnail_url"])
    return data


@database_sync_to_async
def rich_message(room, alice, bob) -> Message:
    """A message with everything: a reply, a mention, an edit, reactions, an image attachment
    with its thumbnail, and an author with an avatar."""
    from io import BytesIO

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from apps.chat import attachments

    def png(name: str) -> SimpleUploadedFile:
        buffer = BytesIO()
        Image.new("RGB", (64, 48), (200, 10, 10)).save(buffer, "PNG")
        return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")

    bob.profile.avatar.save("bob.png", png("bob.png"))
    first = services.message_send(room=room, author=alice, body="first").message
    upload = attachments.attachment_upload(room=room, user=bob, upload=png("cat.png"))
    message = services.message_send(
        room=room,
        author=bob,
        body="hi @alice",
        client_id=str(uuid.uuid4()),
        reply_to=first.pk,
        attachments=[upload.pk],
    ).message
    services.message_edit(room=room, user=bob, message_id=message.pk, body="hi @alice, edited")
    services.reaction_add(room=room, user=alice, message_id=message.pk, emoji="👍")
    services.reaction_add(room=room, user=bob, message_id=message.pk, emoji="👍")
    services.reaction_add(room=room, user=bob, message_id=message.pk, emoji="🎉")
    return message


async def test_the_frame_payload_is_the_api_message_object(public_room, alice, bob, settings):
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]
    bot = await resumed_bot(public_room.pk, alice)
    message = await rich_message(public_room, alice, bob)
    frames = [await bot.frame() for _ in range(6)]  # 2 messages, an edit, 3 reactions
    live = frames[-1]
    assert live["message"]["id"] == message.pk

    @database_sync_to_async
    def api_message() -> dict:
        client = APIClient()
        client.force_authenticate(alice)
        response = client.get(f"/api/rooms/{public_room.pk}/messages/")
        assert response.status_code == 200, response.content
        (found,) = [m for m in response.json()["results"] if m["id"] == message.pk]
        return found

    from_api = await api_message()
    assert from_api["attachments"] and from_api["attachments"][0]["thumbnail_url"]
    assert from_api["author"]["avatar"].startswith("http://testserver/")
    assert from_api["reactions"][0]["me"] is True and from_api["reply_to"]
    assert from_api["mentions"] == [alice.pk] and from_api["edited_at"]
    assert live["message"] == relative(from_api, "http://testserver")
    # A catch-up frame carries the same object as the live one.
    await bot.send({"type": "resume", "after_seq": live["seq"] - 1})
    caught = await bot.frames_until("caught_up")
    assert caught[0]["message"] == live["message"]
    await bot.close()


def test_the_serializer_declared_fields_agree_with_message_data(public_room, alice, bob, rf):
    """MessageSerializer answers payloads.message_data (plus ``me`` and absolute URLs); its
    declared fields (what the OpenAPI schema says) give the same object, for a rich message
    and for a tombstone."""
    message = rich_message.func(public_room, alice, bob)
    tombstone = services.message_send(room=public_room, author=alice, body="to delete").message
    services.message_delete(room=public_room, user=alice, message_id=tombstone.pk)
    request = rf.get("/api/")
    request.user = bob
    for pk in (message.pk, tombstone.pk):
        loaded = selectors.with_timeline(Message.objects.filter(pk=pk)).get()
        serializer = MessageSerializer(loaded, context={"request": request})
        assert serializer.data == serializer.fields_representation(loaded)
        plain = payloads.message_data(loaded)
        assert json.loads(json.dumps(plain)) == plain  # plain JSON types only
        assert relative(serializer.data, "http://testserver") == plain


async def test_the_json_frame_is_built_once_per_event_for_every_json_socket(
    public_room, alice, bob, carol, monkeypatch
):
    """Render once: the hub's copy of an event carries its JSON frame, built by the first JSON
    socket it is offered to and shared by the others (the same ASGI message object); HTML
    sockets never build one."""
    built = []
    real_json_text = realtime.json_text

    def counting(event):
        built.append(event["seq"])
        return real_json_text(event)

    monkeypatch.setattr(realtime, "json_text", counting)
    page = await joined(public_room.pk, carol)
    await page.receive_nothing(timeout=0.1)
    await post(public_room, carol, "html only")
    await page.receive_from(timeout=5)
    assert built == []  # no JSON socket in the room: no JSON frame

    sent = []
    first = await resumed_bot(public_room.pk, alice)
    second = await resumed_bot(public_room.pk, bob)
    for consumer in fanout.hub().rooms[public_room.pk].members:
        if consumer.json_frames:
            real_send = consumer.stream._send_asgi

            async def recording(message, real_send=real_send):
                sent.append(message)
                await real_send(message)

            consumer.stream._send_asgi = recording
    await post(public_room, carol, "to both")
    assert (await first.frame())["seq"] == (await second.frame())["seq"] == 2
    assert built == [2]
    assert len(sent) == 2 and sent[0] is sent[1]
    await first.close()
    await second.close()
    await page.disconnect()
