"""Typing indicators (issue 11 B, apps/chat/typing.py): the coalescing and expiry logic with a
clock the test controls, then the whole ASGI stack — a typing frame from one socket reaches the
room's other viewers as one JSON frame (never an article), at most one per second per socket
whatever the number of typers, the typer leaves when their message arrives or their time is up,
outsiders never connect, and odd frames neither crash nor close the socket. On the real Redis
channel layer when REDIS_URL is set (CI), in memory otherwise."""

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async

from apps.chat import fanout, services
from apps.chat import typing as typing_
from apps.chat.typing import Board, RoomTypers, SocketGate

from .helpers import assert_alive, logged_in, open_socket, send_json, socket_for

# --- the pure logic ---------------------------------------------------------------------------


class Clock:
    """Loop time that moves only when the test says so, and the timers set against it."""

    def __init__(self):
        self.now = 1000.0
        self.timers: list[list] = []  # [when, fn, cancelled]

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay, fn):
        entry = [self.now + delay, fn, False]
        self.timers.append(entry)

        class Handle:
            def cancel(self_inner):
                entry[2] = True

        return Handle()

    def advance(self, seconds: float) -> None:
        """Move time on, firing the timers that fall due, in order."""
        end = self.now + seconds
        while True:
            due = sorted((t for t in self.timers if not t[2] and t[0] <= end), key=lambda t: t[0])
            if not due:
                break
            timer = due[0]
            timer[2] = True
            self.now = max(self.now, timer[0])
            timer[1]()
        self.now = end


def board_with_clock():
    clock = Clock()
    sent: list[tuple[float, int, dict]] = []

    def deliver(room_id, frame):
        sent.append((clock.now, room_id, json.loads(frame["text"])))

    return Board(deliver, clock=clock, call_later=clock.call_later), clock, sent


def test_a_typer_is_shown_until_the_ttl_after_their_last_start():
    typers = RoomTypers()
    assert typers.start(1, "Alice", now=0.0)
    assert not typers.start(1, "Alice", now=3.0)  # a refresh: the shown set is the same
    assert not typers.expire(now=3.0 + typing_.TTL_SECONDS - 0.01)
    assert typers.shown() == ((1, "Alice"),)
    assert typers.expire(now=3.0 + typing_.TTL_SECONDS)
    assert typers.shown() == ()
    assert typers.start(2, "Bob", now=10.0) and typers.stop(2) and not typers.stop(2)


def test_many_typers_in_a_second_make_one_frame_now_and_one_coalesced_frame_a_second_later():
    board, clock, sent = board_with_clock()
    board.start(7, 1, "Alice")
    assert [f["users"] for _, _, f in sent] == [[{"id": 1, "name": "Alice"}]]
    for user_id in range(2, 12):
        clock.advance(0.05)
        board.start(7, user_id, f"User {user_id}")
    assert len(sent) == 1  # coalesced: nothing more inside the second
    clock.advance(1.0)
    assert len(sent) == 2
    assert sent[1][0] - sent[0][0] == pytest.approx(typing_.FRAME_SECONDS)
    assert [u["id"] for u in sent[1][2]["users"]] == list(range(1, 12))
    assert sent[1][2] == {"type": "typing", "room": 7, "users": sent[1][2]["users"]}


def test_a_steady_set_of_typers_costs_no_frame_and_expiry_clears_the_line():
    board, clock, sent = board_with_clock()
    board.start(7, 1, "Alice")
    for _ in range(5):  # the page repeats its start every 3 s: no change, no frame
        clock.advance(3.0)
        board.start(7, 1, "Alice")
    assert len(sent) == 1
    stopped_at = clock.now
    clock.advance(typing_.TTL_SECONDS + typing_.FRAME_SECONDS)
    assert sent[-1][2]["users"] == []
    assert sent[-1][0] - stopped_at <= 6.0  # the bound
    assert 7 not in board.rooms  # idle rooms are forgotten


def test_a_typer_whose_message_arrives_leaves_at_once_or_at_the_next_allowed_frame():
    board, clock, sent = board_with_clock()
    board.start(7, 1, "Alice")
    board.start(7, 2, "Bob")
    clock.advance(1.5)
    assert sent[-1][2]["users"] == [{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}]
    clock.advance(0.5)  # 2 s since the first frame: the next one may go at once
    board.message(7, 1)
    assert sent[-1][2]["users"] == [{"id": 2, "name": "Bob"}]
    assert sent[-1][0] == clock.now


def test_a_typer_who_types_again_right_after_their_message_is_shown_again():
    # The pages dropped them when the article came; the board must not think they still
    # show them (it would send nothing, and the line would stay empty).
    board, clock, sent = board_with_clock()
    board.start(7, 1, "Alice")
    clock.advance(0.3)
    board.message(7, 1)
    clock.advance(0.2)
    board.start(7, 1, "Alice")
    clock.advance(1.0)
    assert sent[-1][2]["users"] == [{"id": 1, "name": "Alice"}]
    assert len(sent) == 2  # the empty frame was never needed: the pages cleared themselves


def test_frames_are_at_least_a_second_apart_under_churn():
    board, clock, sent = board_with_clock()
    for step in range(200):  # starts, stops and messages every 50 ms for 10 s
        user_id = step % 7
        if step % 3:
            board.start(7, user_id, f"U{user_id}")
        else:
            board.stop(7, user_id)
        clock.advance(0.05)
    clock.advance(10)
    times = [when for when, _, _ in sent]
    assert len(times) >= 5
    assert all(b - a >= typing_.FRAME_SECONDS - 1e-9 for a, b in zip(times, times[1:]))
    assert sent[-1][2]["users"] == []


def test_a_socket_publishes_at_most_one_start_a_second_and_only_stops_what_it_started():
    gate = SocketGate()
    assert not gate.admit(True, now=0.0)  # nothing to stop
    assert gate.admit(False, now=0.0)
    assert not gate.admit(False, now=0.5)
    assert not gate.admit(False, now=0.99)
    assert gate.admit(False, now=1.0)
    assert gate.admit(True, now=1.01)  # a stop at once: one per start
    assert not gate.admit(True, now=1.6)  # stopped already
    assert not gate.admit(False, now=1.1)  # a start: not within SOCKET_MIN_SECONDS of the last
    assert gate.admit(False, now=1.25)
    # A start-stop flood publishes at most 1 / SOCKET_MIN_SECONDS starts a second.
    admitted = sum(gate.admit(i % 2 == 1, now=10 + i * 0.01) for i in range(100))
    assert admitted <= 2 * (1 / typing_.SOCKET_MIN_SECONDS) + 2


# --- through the ASGI stack ------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def is_typing_frame(text: str) -> bool:
    return text.startswith('{"type":"typing"')


async def next_typing(socket, timeout: float = 3.0) -> dict:
    """The next typing frame on the socket (room-stream fragments before it are skipped;
    user-stream frames go elsewhere: helpers.Socket)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = await socket.receive_from(timeout=max(deadline - loop.time(), 0.01))
        if is_typing_frame(text):
            return json.loads(text)


async def typing_frames_for(socket, seconds: float) -> list[tuple[float, dict, list[str]]]:
    """Every frame the socket gets for ``seconds``: (loop time, typing frame or None, text)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    frames = []
    while loop.time() < end:
        # (receive_from's timeout would cancel the application: wait with receive_nothing)
        if await socket.receive_nothing(timeout=min(0.05, max(end - loop.time(), 0.001))):
            continue
        text = await socket.receive_from(timeout=1)
        frames.append((loop.time(), json.loads(text) if is_typing_frame(text) else None, text))
    return frames


async def viewer(user, room):
    """A page's socket of the room, resumed, with its user stream started (typing frames go
    through it)."""
    socket = await socket_for(await logged_in(user), room.pk)
    await socket.user_frame_of("sync")
    return socket


def send_message(room, author, body):
    return database_sync_to_async(services.message_send)(room=room, author=author, body=body)


@pytestmark_db
async def test_a_typing_frame_reaches_the_other_viewer_as_a_typing_frame_not_an_article(
    public_room, alice, bob
):
    watching, typing = await viewer(alice, public_room), await viewer(bob, public_room)
    await send_json(typing, {"type": "typing"})
    frames = await typing_frames_for(watching, 1.0)
    assert [f for _, f, _ in frames] == [
        {"type": "typing", "room": public_room.pk, "users": [{"id": bob.pk, "name": "Bob"}]}
    ]
    assert not any("<article" in text for _, _, text in frames)
    await watching.disconnect()
    await typing.disconnect()


@pytestmark_db
async def test_a_page_opened_while_someone_types_is_told_at_once(public_room, alice, bob, carol):
    watching, typing = await viewer(alice, public_room), await viewer(bob, public_room)
    await send_json(typing, {"type": "typing"})
    await next_typing(watching)
    late = await viewer(carol, public_room)  # bob sends no new typing frame
    assert (await next_typing(late, timeout=1.0))["users"] == [{"id": bob.pk, "name": "Bob"}]
    for socket in (watching, typing, late):
        await socket.disconnect()


@pytestmark_db
async def test_a_stop_clears_the_line_and_a_closed_tab_stops_too(public_room, alice, bob):
    watching, typing = await viewer(alice, public_room), await viewer(bob, public_room)
    await send_json(typing, {"type": "typing"})
    assert (await next_typing(watching))["users"] == [{"id": bob.pk, "name": "Bob"}]
    await send_json(typing, {"type": "typing", "stop": True})
    assert (await next_typing(watching, timeout=2.0))["users"] == []
    # A typer whose tab closes leaves the line without waiting for the expiry.
    again = await viewer(bob, public_room)
    await send_json(again, {"type": "typing"})
    assert (await next_typing(watching, timeout=2.0))["users"] != []
    await again.disconnect()
    assert (await next_typing(watching, timeout=2.0))["users"] == []
    await watching.disconnect()
    await typing.disconnect()


@pytestmark_db
async def test_each_socket_gets_at_most_one_typing_frame_a_second_however_many_type(
    public_room, alice, make_user
):
    watching = await viewer(alice, public_room)
    make = database_sync_to_async(make_user)
    typists = [await make(f"typist{i}", display_name=f"Typist {i}") for i in range(8)]
    sockets = [await viewer(user, public_room) for user in typists]
    for socket in sockets:  # all within a few milliseconds
        await send_json(socket, {"type": "typing"})
    frames = [(t, f) for t, f, _ in await typing_frames_for(watching, 3.5) if f is not None]
    times = [t for t, _ in frames]
    assert frames  # (the spacing below bounds their number: at most 4 in 3.5 s)
    assert all(b - a >= typing_.FRAME_SECONDS - 0.05 for a, b in zip(times, times[1:]))
    assert {u["id"] for u in frames[-1][1]["users"]} == {u.pk for u in typists}
    for socket in [watching, *sockets]:
        await socket.disconnect()


@pytestmark_db
async def test_the_typer_leaves_the_line_when_their_message_arrives(public_room, alice, bob):
    watching, typing = await viewer(alice, public_room), await viewer(bob, public_room)
    await send_json(typing, {"type": "typing"})
    assert (await next_typing(watching))["users"] == [{"id": bob.pk, "name": "Bob"}]
    await send_json(typing, {"body": "done typing", "client_id": str(uuid.uuid4())})
    frames = await typing_frames_for(watching, 1.5)
    articles = [i for i, (_, f, text) in enumerate(frames) if f is None and "done typing" in text]
    cleared = [i for i, (_, f, _) in enumerate(frames) if f is not None and f["users"] == []]
    assert articles and cleared  # the article, and a frame without Bob within the second
    await watching.disconnect()
    await typing.disconnect()


@pytestmark_db
async def test_the_line_clears_when_the_typers_time_is_up(public_room, alice, bob):
    watching, typing = await viewer(alice, public_room), await viewer(bob, public_room)
    board = fanout.hub().typing
    clock = Clock()
    board.clock = clock  # the hub's timers still run on the loop; the test fires them itself
    await send_json(typing, {"type": "typing"})
    assert (await next_typing(watching))["users"] == [{"id": bob.pk, "name": "Bob"}]
    clock.now += typing_.TTL_SECONDS - 0.1
    board.wake(public_room.pk)
    assert not [f for _, f, _ in await typing_frames_for(watching, 0.3) if f is not None]
    clock.now += 0.2
    board.wake(public_room.pk)  # what the expiry timer does
    assert (await next_typing(watching, timeout=1.0))["users"] == []
    await watching.disconnect()
    await typing.disconnect()


@pytestmark_db
async def test_an_outsider_of_a_private_room_cannot_connect_to_type_there(private_room, carol):
    socket, connected = await open_socket(private_room.pk, carol)
    assert connected  # accepted, then closed: htmx does not retry a 4xxx close
    assert await socket.receive_output(timeout=2) == {"type": "websocket.close", "code": 4404}


@pytestmark_db
async def test_the_members_of_a_private_room_see_each_other_type(private_room, alice, bob):
    watching, typing = await viewer(alice, private_room), await viewer(bob, private_room)
    await send_json(typing, {"type": "typing"})
    assert (await next_typing(watching))["users"] == [{"id": bob.pk, "name": "Bob"}]
    await watching.disconnect()
    await typing.disconnect()


@pytestmark_db
@pytest.mark.parametrize("frame", [{"stop": "yes"}, {"stop": None}, {"stop": 1}, {"stop": []}])
async def test_a_bad_typing_frame_gets_an_error_and_the_socket_lives(public_room, bob, frame):
    socket = await viewer(bob, public_room)
    await send_json(socket, {"type": "typing", **frame})
    error = await socket.receive_from(timeout=2)
    assert 'id="composer-error"' in error and "stop must be true or false" in error
    await assert_alive(socket)
    await socket.disconnect()


@pytestmark_db
async def test_extra_typing_frames_are_dropped_without_an_answer(
    public_room, alice, bob, monkeypatch
):
    published = []
    original = typing_.publish

    def counting(**kwargs):
        published.append(kwargs)
        original(**kwargs)

    monkeypatch.setattr(typing_, "publish", counting)
    socket = await viewer(bob, public_room)
    for _ in range(30):
        await send_json(socket, {"type": "typing", "ignored": "field"})
    await send_json(socket, {"type": "typing", "stop": True})
    await send_json(socket, {"type": "typing", "stop": True})  # nothing left to stop
    frames = await typing_frames_for(socket, 0.6)
    assert [p["stop"] for p in published] == [False, True]
    assert all(f is not None for _, f, _ in frames)  # no error fragment, only its own line
    await assert_alive(socket)
    await socket.disconnect()


@pytestmark_db
async def test_typing_is_off_above_the_room_size_cap_and_the_sender_is_told_once(
    public_room, alice, bob, settings
):
    settings.PARLEY_TYPING_MAX_MEMBERS = 1
    await database_sync_to_async(services.room_join)(room=public_room, user=bob)
    watching, typing = await viewer(alice, public_room), await viewer(bob, public_room)
    await send_json(typing, {"type": "typing"})
    notice = json.loads(await typing.receive_from(timeout=2))
    assert notice == {"type": "typing_off", "room": public_room.pk, "limit": 1}
    await asyncio.sleep(typing_.SOCKET_START_SECONDS)
    await send_json(typing, {"type": "typing"})
    assert not await typing_frames_for(typing, 0.5)  # told once only
    assert not [f for _, f, _ in await typing_frames_for(watching, 0.5) if f is not None]
    await watching.disconnect()
    await typing.disconnect()
