"""SocketStream, the per-socket delivery state machine, with fake I/O: no consumer, no channel
layer, no database. A fake room holds messages with a seq and a version (the seq of their
latest change) and answers the stream's loads; a fake socket records what is sent.

What it must hold: each change reaches the socket once, in seq order; the catch-up goes before
what arrived live meanwhile; a gap the layer left is filled from the database first; a stalled
socket holds up no other; a socket that is gone gets nothing more queued."""

import asyncio
import re
from dataclasses import dataclass

import pytest

from apps.chat import delivery, realtime
from apps.chat.delivery import SocketStream, State


@dataclass
class Msg:
    id: int
    seq: int
    version: int


class FakeRoom:
    """The database's side: each change takes the room's next seq."""

    def __init__(self):
        self.last_seq = 0
        self.messages: dict[int, Msg] = {}
        self.loads: list[tuple[int, int | None, int]] = []
        self.down = False  # the database is unreachable

    def post(self) -> dict:
        self.last_seq += 1
        message = Msg(id=self.last_seq, seq=self.last_seq, version=self.last_seq)
        self.messages[message.id] = message
        return event(message)

    def edit(self, message_id: int) -> dict:
        self.last_seq += 1
        message = self.messages[message_id]
        message.version = self.last_seq
        return event(message)

    async def load(self, after: int, upto: int | None, limit: int) -> list[Msg]:
        if self.down:
            raise ConnectionError("database away")
        self.loads.append((after, upto, limit))
        changed = [
            m
            for m in self.messages.values()
            if m.version > after and (upto is None or m.version <= upto)
        ]
        return sorted(changed, key=lambda m: m.version)[:limit]

    async def render(self, messages) -> str:
        return "".join(html_of(m) for m in messages)

    async def room_last_seq(self) -> int:
        return self.last_seq


def html_of(message: Msg) -> str:
    return f"<m{message.id}v{message.version}>"


def event(message: Msg) -> dict:
    html = html_of(message)
    return {
        "type": "room.change",
        "room": 1,
        "id": message.id,
        "seq": message.version,
        "html": html,
        "frame": realtime.websocket_frame(html),
    }


class FakeSocket:
    """Records every frame. ``stall()`` makes sends wait (the client's buffer is full) until
    ``unstall()``; ``fail_after(n)`` makes sends raise once n have gone."""

    def __init__(self):
        self.frames: list[str] = []
        self.changed = asyncio.Condition()
        self.gate: asyncio.Event | None = None
        self.failing_after: int | None = None

    def stall(self) -> None:
        self.gate = asyncio.Event()

    def unstall(self) -> None:
        self.gate.set()

    def fail_after(self, n: int) -> None:
        self.failing_after = n

    async def send(self, message: dict) -> None:
        assert message["type"] == "websocket.send"
        if self.failing_after is not None and len(self.frames) >= self.failing_after:
            raise OSError("client disconnected")
        if self.gate is not None:
            await self.gate.wait()
        self.frames.append(message["text"])
        async with self.changed:
            self.changed.notify_all()

    async def until(self, count: int) -> list[str]:
        """The frames, once there are at least ``count`` of them."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.frames) >= count), 5)
        return self.frames

    def delivered(self) -> list[str]:
        """Every message element sent, in order, across frames."""
        return re.findall(r"<m\d+v\d+>", "".join(self.frames))


def stream_for(room: FakeRoom, socket: FakeSocket) -> SocketStream:
    return SocketStream(
        send=socket.send,
        load=room.load,
        render=room.render,
        last_seq=room.room_last_seq,
        seq_at_connect=room.last_seq,
        label="room 1",
    )


def live(room, socket, after=None) -> SocketStream:
    """A stream that has resumed (by default from the room's current seq: nothing missed)."""
    stream = stream_for(room, socket)
    stream.resume(room.last_seq if after is None else after)
    return stream


# --- holding, then live ------------------------------------------------------------------------


async def test_live_changes_are_held_until_resume_and_go_after_the_catch_up_once():
    room, socket = FakeRoom(), FakeSocket()
    missed = room.post()  # before the socket connected
    stream = stream_for(room, socket)
    stream.offer(room.post())  # live, before the client's resume: held
    stream.offer(room.post())
    assert socket.frames == [] and stream.state is State.HOLDING
    stream.resume(0)
    assert stream.state is State.LIVE
    # The catch-up query returns all three; the held copies are duplicates and dropped.
    assert socket.frames == ["<m1v1><m2v2><m3v3>"]
    assert missed["seq"] == 1 and stream.cursor == 3


async def test_without_a_resume_the_hold_ends_and_delivery_starts_from_the_connect_seq():
    room, socket = FakeRoom(), FakeSocket()
    room.post()  # before the socket: the client's page showed it
    stream = stream_for(room, socket)
    stream.offer(room.post())
    stream.hold_expired()  # what HOLD_SECONDS' timer does
    assert socket.frames == ["<m2v2>"] and stream.state is State.LIVE
    stream.offer(room.post())
    assert socket.frames == ["<m2v2>", "<m3v3>"]


async def test_the_hold_timer_starts_the_stream(monkeypatch):
    monkeypatch.setattr(delivery, "HOLD_SECONDS", 0)
    room, socket = FakeRoom(), FakeSocket()
    stream = stream_for(room, socket)
    stream.offer(room.post())
    stream.start_holding()
    assert await socket.until(1) == ["<m1v1>"]


async def test_a_resume_after_the_hold_ended_catches_up_from_what_the_client_says():
    room, socket = FakeRoom(), FakeSocket()
    stream = stream_for(room, socket)
    stream.hold_expired()
    stream.resume(0)  # late, but what the client holds decides
    stream.offer(room.post())
    assert socket.frames == ["<m1v1>"]


# --- the live stream -------------------------------------------------------------------------


async def test_an_in_order_change_is_sent_inside_offer_without_a_task():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    tasks_before = asyncio.all_tasks()
    for _ in range(3):
        stream.offer(room.post())
    assert socket.frames == ["<m1v1>", "<m2v2>", "<m3v3>"]
    assert asyncio.all_tasks() == tasks_before and room.loads == [(0, None, 501)]


async def test_a_duplicate_is_dropped():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    first = room.post()
    stream.offer(first)
    stream.offer(first)
    assert socket.frames == ["<m1v1>"]


async def test_a_gap_is_filled_from_the_database_before_the_change_that_revealed_it():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    room.post()  # lost by the channel layer
    room.post()  # lost too
    stream.offer(room.post())
    await stream.idle()
    assert socket.frames == ["<m1v1><m2v2>", "<m3v3>"]
    assert room.loads[-1] == (0, 2, 501)  # only the gap, bounded


async def test_an_edit_reaches_the_socket_as_the_messages_new_state():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    stream.offer(room.post())
    stream.offer(room.edit(1))
    assert socket.delivered() == ["<m1v1>", "<m1v2>"]


async def test_a_gap_whose_messages_changed_again_since_moves_the_cursor_to_its_end():
    """Message 2 was posted (seq 2) and edited (seq 3), both events lost; the edit of message 1
    (seq 4) arrives. The gap (1, 3] holds message 2 at version 3: sent once, current."""
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    stream.offer(room.post())
    room.post()
    room.edit(2)
    stream.offer(room.edit(1))
    await stream.idle()
    assert socket.delivered() == ["<m1v1>", "<m2v3>", "<m1v4>"]
    assert stream.cursor == 4


async def test_after_a_bounded_load_the_cursor_is_its_upper_bound():
    """A change in (cursor, upto] whose message changed again later is not in that range any
    more: the range is done all the same, and is not read again."""
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    room.post()  # seq 1, lost
    room.edit(1)  # seq 2: message 1 is at version 2 now
    room.edit(1)  # seq 3
    stream.catch_up_to(1)  # the hub's tick read the room's last seq while it was 1
    await stream.idle()
    assert stream.cursor == 1 and socket.frames == []  # nothing in (0, 1] any more
    loads = len(room.loads)
    stream.catch_up_to(1)
    await stream.idle()
    assert len(room.loads) == loads  # not read again
    stream.catch_up_to(3)
    await stream.idle()
    assert socket.delivered() == ["<m1v3>"]


async def test_a_version_never_goes_backwards_on_one_socket():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    posted = room.post()
    edited = room.edit(1)
    stream.offer(edited)  # the layer delivered the edit; the post was lost
    await stream.idle()
    stream.offer(posted)  # the post arrives late
    await stream.idle()
    assert socket.delivered() == ["<m1v2>"]


async def test_a_catch_up_is_one_frame():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    for _ in range(5):
        room.post()
    stream.catch_up_to(5)
    await stream.idle()
    assert socket.frames == ["<m1v1><m2v2><m3v3><m4v4><m5v5>"]


async def test_a_catch_up_while_work_is_queued_is_left_to_that_work():
    room, socket = FakeRoom(), FakeSocket()
    socket.stall()
    stream = live(room, socket)
    stream.offer(room.post())  # waits for the client
    stream.offer(room.post())  # queued behind it
    loads = len(room.loads)
    stream.catch_up_to(2)
    socket.unstall()
    await stream.idle()
    assert socket.frames == ["<m1v1>", "<m2v2>"] and len(room.loads) == loads


async def test_far_behind_the_page_is_asked_to_reload(monkeypatch):
    monkeypatch.setattr(delivery, "RESUME_CAP", 3)
    room, socket = FakeRoom(), FakeSocket()
    for _ in range(5):
        room.post()
    stream = live(room, socket, after=0)
    assert len(socket.frames) == 1
    assert 'id="chat-reload"' in socket.frames[0] and socket.delivered() == []
    # It continues from the room's last seq: the next change is in order.
    stream.offer(room.post())
    assert socket.frames[1:] == ["<m6v6>"]


# --- acknowledgements ------------------------------------------------------------------------


async def test_an_acknowledgement_before_the_stream_starts_is_not_sent_again():
    """A bot that sends before (or without) resume: its message is acknowledged at once, and
    neither the held live copy nor the catch-up brings it a second time."""
    room, socket = FakeRoom(), FakeSocket()
    stream = stream_for(room, socket)
    own = room.post()
    stream.acknowledge(own, True)
    stream.offer(own)  # the live copy, held
    other = room.post()
    stream.offer(other)
    stream.resume(0)
    assert socket.delivered() == ["<m1v1>", "<m2v2>"]
    stream.offer(room.post())
    assert socket.delivered()[-1] == "<m3v3>"


async def test_an_early_acknowledgement_and_the_held_copy_after_the_hold_ends():
    room, socket = FakeRoom(), FakeSocket()
    stream = stream_for(room, socket)
    own = room.post()
    stream.acknowledge(own, True)
    stream.offer(own)
    stream.hold_expired()
    stream.offer(room.post())
    assert socket.delivered() == ["<m1v1>", "<m2v2>"]


async def test_an_early_acknowledgement_whose_live_copy_comes_after_the_hold_ended():
    """Publishing does not wait for the channel layer, so the live copy of a message
    acknowledged before the stream started may arrive only once the hold has ended — in
    order, right after the cursor: still not sent a second time."""
    room, socket = FakeRoom(), FakeSocket()
    stream = stream_for(room, socket)
    own = room.post()
    stream.acknowledge(own, True)
    stream.hold_expired()
    stream.offer(own)
    stream.offer(room.post())
    await stream.idle()
    assert socket.delivered() == ["<m1v1>", "<m2v2>"]


async def test_an_acknowledgement_on_a_live_socket_goes_in_order_and_once():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    room.post()  # someone else's, lost by the layer
    own = room.post()
    stream.acknowledge(own, True)  # the gap before it is filled first
    stream.offer(own)  # and the live copy is a duplicate
    await stream.idle()
    assert socket.delivered() == ["<m1v1>", "<m2v2>"]


CLIENT_ID = "0b7e6f3c-55a4-4c39-9d57-8a0f0b2b8c11"


def acks(socket: FakeSocket) -> list[tuple[str, str]]:
    """(data-client-id, data-message-id) of every ``#message-ack`` fragment sent, in order."""
    return re.findall(
        r'<div id="message-ack" hx-swap-oob="true" data-client-id="([^"]*)" '
        r'data-message-id="(\d+)" hidden></div>',
        "".join(socket.frames),
    )


async def test_a_retried_message_is_acknowledged_again_even_if_the_socket_had_it():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    own = room.post()
    stream.offer(own)
    stream.acknowledge(own, False, CLIENT_ID)  # a retry of a message stored earlier
    stream.acknowledge(own, True)  # (a first acknowledgement the live copy overtook: not)
    await stream.idle()
    # By name, not as the article again: the socket has it.
    assert socket.delivered() == ["<m1v1>"] and acks(socket) == [(CLIENT_ID, "1")]
    assert len(socket.frames) == 2


async def test_a_retry_read_before_an_edit_went_out_never_takes_the_version_back():
    """The retry read message 1 at version 1; its edit (version 2) was sent on this socket
    before the retry's acknowledgement came up in the queue. Sending the article it read
    would show version 1 again."""
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    own = room.post()
    stream.offer(own)
    retry = event(Msg(id=1, seq=1, version=1))  # the state the retry read
    stream.offer(room.edit(1))
    stream.acknowledge(retry, False, CLIENT_ID)
    await stream.idle()
    assert socket.delivered() == ["<m1v1>", "<m1v2>"]
    assert acks(socket) == [(CLIENT_ID, "1")] and stream.cursor == 2


async def test_a_retry_at_the_cursor_of_a_catch_up_is_acknowledged_by_name():
    """The catch-up sent message 1 at version 2 (the cursor); the retry read it at version 2
    too: no second article either."""
    room, socket = FakeRoom(), FakeSocket()
    room.post()
    edited = room.edit(1)
    stream = live(room, socket, after=0)
    stream.acknowledge(edited, False, CLIENT_ID)
    await stream.idle()
    assert socket.delivered() == ["<m1v2>"] and acks(socket) == [(CLIENT_ID, "1")]


async def test_a_retry_the_stream_has_not_reached_is_delivered_in_order():
    """The retry's seq is above the cursor (its first acknowledgement and live copy have not
    come yet): the gap before it first, then its article, once."""
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    room.post()  # someone else's, lost by the layer
    own = room.post()
    stream.acknowledge(own, False, CLIENT_ID)
    stream.offer(own)  # the live copy: a duplicate now
    await stream.idle()
    assert socket.delivered() == ["<m1v1>", "<m2v2>"] and acks(socket) == []


async def test_a_retry_before_the_stream_starts_is_acknowledged_with_its_article_once():
    room, socket = FakeRoom(), FakeSocket()
    stream = stream_for(room, socket)
    own = room.post()
    stream.acknowledge(own, False, CLIENT_ID)
    stream.offer(own)  # held
    stream.resume(0)
    assert socket.delivered() == ["<m1v1>"] and acks(socket) == []


# --- slow and gone clients -------------------------------------------------------------------


async def test_a_stalled_socket_holds_up_no_other_socket_and_keeps_its_order():
    room = FakeRoom()
    stalled_socket, quick_socket = FakeSocket(), FakeSocket()
    stalled_socket.stall()
    stalled, quick = live(room, stalled_socket), live(room, quick_socket)
    for _ in range(3):
        change = room.post()
        for stream in (stalled, quick):  # what the hub's dispatch does
            stream.offer(change)
    # Delivered inside offer: no task, no wait.
    assert quick_socket.frames == ["<m1v1>", "<m2v2>", "<m3v3>"]
    assert stalled_socket.frames == []
    stalled_socket.unstall()
    assert await stalled_socket.until(3) == ["<m1v1>", "<m2v2>", "<m3v3>"]


async def test_a_socket_whose_send_failed_gets_nothing_more_queued():
    """A failed send means the client has gone (uvicorn raises ClientDisconnected); the
    consumer's disconnect follows, and until then no work piles up for the socket."""
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    socket.fail_after(1)
    stream.offer(room.post())
    stream.offer(room.post())  # fails
    assert stream.state is State.CLOSED
    loads = len(room.loads)
    room.post()
    stream.offer(room.post())  # would need a gap fill
    stream.catch_up_to(room.last_seq)
    stream.acknowledge(room.post(), True)
    assert socket.frames == ["<m1v1>"] and len(room.loads) == loads
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_failed_send_inside_the_queue_closes_the_stream_too():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    socket.stall()
    stream.offer(room.post())  # waits: 2 and 3 queue behind it
    stream.offer(room.post())
    stream.offer(room.post())
    socket.fail_after(2)
    socket.unstall()
    await stream.idle()  # the third send failed
    assert stream.state is State.CLOSED and socket.frames == ["<m1v1>", "<m2v2>"]


async def test_a_socket_that_never_drains_keeps_a_bounded_backlog_and_catches_up_later(
    monkeypatch,
):
    monkeypatch.setattr(delivery, "BACKLOG_MAX", 5)
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    socket.stall()
    for _ in range(99):
        stream.offer(room.post())
    socket.unstall()
    # The one under way and the five queued; the rest was dropped here, not kept in memory…
    assert await socket.until(6) == [f"<m{i}v{i}>" for i in range(1, 7)]
    await stream.idle()
    assert len(socket.frames) == 6
    # …and the database brings it, in one frame, on the hub's next tick.
    stream.catch_up_to(room.last_seq)
    await stream.idle()
    assert socket.frames[6] == "".join(f"<m{i}v{i}>" for i in range(7, 100))


async def test_a_database_error_loses_nothing_the_next_catch_up_brings():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    room.down = True
    room.post()
    stream.offer(room.post())  # the gap fill fails: logged, the stream goes on
    await stream.idle()
    assert stream.state is State.LIVE and socket.frames == []
    room.down = False
    stream.catch_up_to(room.last_seq)
    await stream.idle()
    assert socket.delivered() == ["<m1v1>", "<m2v2>"]


async def test_close_cancels_the_send_under_way_and_drops_everything():
    room, socket = FakeRoom(), FakeSocket()
    stream = live(room, socket)
    socket.stall()
    stream.offer(room.post())
    stream.offer(room.post())
    (sending,) = asyncio.all_tasks() - {asyncio.current_task()}
    stream.close()
    with pytest.raises(asyncio.CancelledError):
        await sending
    socket.unstall()
    stream.offer(room.post())
    stream.resume(0)
    assert socket.frames == [] and stream.state is State.CLOSED


async def test_close_while_holding_cancels_the_hold_timer(monkeypatch):
    monkeypatch.setattr(delivery, "HOLD_SECONDS", 0)
    room, socket = FakeRoom(), FakeSocket()
    stream = stream_for(room, socket)
    stream.offer(room.post())
    stream.start_holding()
    stream.close()
    await asyncio.sleep(0)  # the timer would have fired on this turn of the loop
    await asyncio.sleep(0)
    assert socket.frames == [] and stream.state is State.CLOSED


async def test_works_with_messages_that_have_no_version_yet():
    """Before the version field exists, a message's change seq is its seq."""

    @dataclass
    class Plain:
        id: int
        seq: int

    room, socket = FakeRoom(), FakeSocket()

    async def load(after, upto, limit):
        return [Plain(id=1, seq=1)]

    async def render(messages):
        return "".join(f"<m{m.id}v{m.seq}>" for m in messages)

    stream = SocketStream(
        send=socket.send, load=load, render=render, last_seq=room.room_last_seq, seq_at_connect=0
    )
    stream.resume(0)
    assert socket.frames == ["<m1v1>"] and stream.cursor == 1
