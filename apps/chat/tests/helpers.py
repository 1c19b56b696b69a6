"""Helpers shared by the websocket test modules: sockets on the full ASGI stack, and probes
that wait for a condition instead of a fixed time."""

import asyncio
import json
import re
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


# The user stream's frames (JSON objects; the room stream's are HTML fragments).
USER_FRAME = re.compile(r'\{"type":"(sync|unread|notify|sidebar|room|directory)"')


class Socket(WebsocketCommunicator):
    """A test socket whose user-stream frames go to ``user_frames`` (decoded), not to the
    output ``receive_from`` / ``receive_output`` / ``receive_nothing`` read: a test of the room
    stream reads its fragments as it did before there was a user stream, and a test of the
    user stream reads ``user_frame()`` in their own order."""

    def __init__(self, app, path, headers=None):
        self.user_frames: asyncio.Queue = asyncio.Queue()

        async def divert(scope, receive, send):
            async def send_or_keep(message):
                text = message.get("text") if message.get("type") == "websocket.send" else None
                if text is not None and USER_FRAME.match(text):
                    self.user_frames.put_nowait(json.loads(text))
                    return
                await send(message)

            return await app(scope, receive, send_or_keep)

        super().__init__(divert, path, headers=headers)

    async def user_frame(self, timeout: float = 5) -> dict:
        """The next user-stream frame, within ``timeout``."""
        return await asyncio.wait_for(self.user_frames.get(), timeout)

    async def user_frame_of(self, kind: str, timeout: float = 5, **fields) -> dict:
        """The next user-stream frame of this type (and these fields' values), within
        ``timeout``; others before it are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.user_frame(max(deadline - loop.time(), 0.01))
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    async def no_user_frame(self, timeout: float = 0.3) -> bool:
        """True if no user-stream frame comes within ``timeout`` (for "nothing more")."""
        try:
            frame = await asyncio.wait_for(self.user_frames.get(), timeout)
        except TimeoutError:
            return True
        self.user_frames.put_nowait(frame)  # (order no longer matters: the test fails)
        return False


def auth_headers(cookie: str, origin=ORIGIN) -> list:
    headers = [HOST, origin] if origin else [HOST]
    headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return headers


async def open_socket(
    room_pk: int | None, user=None, origin=ORIGIN
) -> tuple[WebsocketCommunicator, bool]:
    """A socket of the room (None: ``/ws/user/``), connected as ``user`` (None: anonymous)."""
    headers = [HOST, origin] if origin else [HOST]
    if user is not None:
        cookie = await session_cookie(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    path = "/ws/user/" if room_pk is None else f"/ws/chat/room/{room_pk}/"
    communicator = Socket(application, path, headers=headers)
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


async def socket_for(client: Client, room_pk: int | None) -> Socket:
    """A socket on ``client``'s session, live (accepted: its hub knows it) and resumed (a room
    socket; None: ``/ws/user/``)."""
    path = "/ws/user/" if room_pk is None else f"/ws/chat/room/{room_pk}/"
    communicator = Socket(application, path, headers=auth_headers(cookie_of(client)))
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    if room_pk is not None:
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
