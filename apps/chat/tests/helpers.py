"""Helpers shared by the websocket test modules: sockets on the full ASGI stack, and probes
that wait for a condition instead of a fixed time."""

import asyncio
import json
import uuid

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from apps.chat.models import Message, Reaction, Room
from apps.chat.selectors import room_last_seq
from project.asgi import application

# The page's own origin: scheme (ws → http), host and port of the Host header (no port: 80).
HOST = (b"host", b"localhost")
ORIGIN = (b"origin", b"http://localhost")


@database_sync_to_async
def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def open_socket(room_pk: int, user=None, origin=ORIGIN) -> tuple[WebsocketCommunicator, bool]:
    headers = [HOST, origin] if origin else [HOST]
    if user is not None:
        cookie = await session_cookie(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = WebsocketCommunicator(application, f"/ws/chat/room/{room_pk}/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def joined(room_pk: int, user, after_seq: int | None = None) -> WebsocketCommunicator:
    """A connected socket that has done what the page does first: resume from the last seq it
    shows (by default the room's current one, so nothing is replayed)."""
    communicator, connected = await open_socket(room_pk, user)
    assert connected
    if after_seq is None:
        after_seq = await database_sync_to_async(room_last_seq)(room=Room(pk=room_pk))
    await send_json(communicator, {"type": "resume", "after_seq": after_seq})
    return communicator


async def send_json(communicator, payload) -> None:
    await communicator.send_to(text_data=json.dumps(payload))


async def message_count() -> int:
    return await database_sync_to_async(Message.objects.count)()


@database_sync_to_async
def timeline_snapshot() -> dict:
    """Everything a change writes: every message's state, every reaction, every room's
    last_seq (for "nothing was written")."""
    return {
        "messages": list(
            Message.objects.order_by("pk").values_list(
                "pk", "version", "body", "html", "edited_at", "deleted_at", "reply_to_id"
            )
        ),
        "reactions": list(
            Reaction.objects.order_by("pk").values_list("pk", "message_id", "user_id", "emoji")
        ),
        "last_seq": list(Room.objects.order_by("pk").values_list("pk", "last_seq")),
    }


async def assert_alive(communicator: WebsocketCommunicator, body: str = "still here") -> str:
    """Sends ``body`` and returns the fragment that acknowledges it (the socket is open and
    acts on frames)."""
    await send_json(communicator, {"body": body, "client_id": str(uuid.uuid4())})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        html = await communicator.receive_from(timeout=max(deadline - loop.time(), 0.01))
        if body in html:
            return html


async def assert_answers(communicator: WebsocketCommunicator) -> None:
    """The socket answers a frame (an unknown type: an error fragment) instead of closing. No
    message is created, so no send rate limit applies."""
    await send_json(communicator, {"type": "probe"})
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.send", output
    assert "Unknown frame type" in output["text"]


CLOSED_4401 = {"type": "websocket.close", "code": 4401}


@database_sync_to_async
def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cookie_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def socket_for(client: Client, room_pk: int) -> WebsocketCommunicator:
    """A socket on ``client``'s session, live (accepted: its hub knows it) and resumed."""
    cookie = (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie_of(client)}".encode())
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/room/{room_pk}/", headers=[HOST, ORIGIN, cookie]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await send_json(communicator, {"type": "resume", "after_seq": 0})
    return communicator


async def next_close(communicator: WebsocketCommunicator, timeout: float = 2.0) -> dict:
    """The close, within ``timeout``; message frames (other sockets' messages) before it are
    skipped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        output = await communicator.receive_output(timeout=max(deadline - loop.time(), 0.01))
        if output["type"] != "websocket.send":
            return output


async def assert_closed_and_deaf(communicator: WebsocketCommunicator) -> None:
    """Closed with 4401 within 2 s, and a message frame sent afterwards creates nothing."""
    assert await next_close(communicator) == CLOSED_4401
    before = await message_count()
    await send_json(communicator, {"body": "after the end", "client_id": str(uuid.uuid4())})
    # The application handles its input in order: once it has processed the disconnect after
    # the frame and finished, the frame was seen (and ignored).
    await communicator.disconnect()
    assert await message_count() == before
    assert not await database_sync_to_async(Message.objects.filter(body="after the end").exists)()
