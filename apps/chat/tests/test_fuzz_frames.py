"""Fuzz pass over websocket frames (hypothesis): whatever a client sends, it gets an error
fragment or a normal reply, the socket stays usable (a valid message afterwards is
acknowledged), and the server logs no ERROR and no traceback.

One socket serves every example of a test (a new socket per example would cost more than the
frames); after each frame a valid message with a fresh client_id must come back as its
acknowledgement, which proves the socket alive and still in order."""

import asyncio
import json
import logging
import re
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.chat import services
from apps.chat.models import Message, Room
from apps.chat.tests.helpers import joined
from apps.core.tests.fuzzing import FUZZ

pytestmark = pytest.mark.django_db(transaction=True)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.text(alphabet=st.characters(codec=None), max_size=20)  # surrogates, controls, bidi
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
kinds = st.sampled_from(["message", "resume", "", "MESSAGE", "typing"]) | json_values
message_like = st.fixed_dictionaries(
    {},
    optional={
        "type": kinds,
        "body": json_values | st.text(alphabet=st.characters(codec=None), max_size=200),
        "client_id": json_values | st.uuids().map(str) | st.just(""),
        "after_seq": json_values,
        "HEADERS": json_values,
    },
)


def _dump(value) -> str:
    return json.dumps(value, allow_nan=True)


frames = st.one_of(
    st.text(max_size=300),  # mostly not JSON at all
    st.text(alphabet=st.characters(codec=None), max_size=100),
    json_values.map(_dump),
    message_like.map(_dump),
    st.sampled_from(["1" * 5000, "1e999", "-1e999", "[1e999]", '{"after_seq": 1e999}', "NaN"]),
    st.sampled_from(["1" * 5000, "²", "١٢", "9" * 30, " 1", "0x10"]).map(
        lambda text: _dump({"type": "resume", "after_seq": text})
    ),
    st.integers(min_value=0, max_value=10**30).map(
        lambda n: _dump({"type": "resume", "after_seq": n})
    ),
    st.integers(min_value=1, max_value=60).map(lambda depth: "[" * depth + "]" * depth),
)


# --- change frames, and messages with an odd reply_to --------------------------------------


@dataclass(frozen=True)
class Recent:
    """Stands for the id of the room's ``back``-th newest message (0: the newest; the fuzz's
    own probes, alice's), sent as an int or a digit string: a frame that names a real message,
    filled in when the frame is sent."""

    back: int
    as_text: bool = False


@dataclass(frozen=True)
class Theirs:
    """Stands for the id of bob's message in the room (alice may delete it, not edit it)."""


@dataclass(frozen=True)
class Quoted:
    """Stands for the id of alice's message that bob's replies to (editing or deleting it
    re-renders the reply too: two changes)."""


def mostly(common, rare):
    """``common`` two times in three (``|`` would weigh every alternative the same)."""
    return st.sampled_from([common, common, rare]).flatmap(lambda strategy: strategy)


real_ids = st.builds(Recent, st.integers(0, 6), st.booleans()) | st.sampled_from(
    [Theirs(), Quoted()]
)
odd_ids = st.one_of(
    json_values,
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6).map(str),
    st.sampled_from(["", " 1", "1 ", "01", "+1", "-1", "1e3", "²", "١٢", "9" * 19, "9" * 30]),
)
message_ids = mostly(real_ids, odd_ids)
bodies = mostly(
    st.sampled_from(["edited **text**", "> quote", "`x`"]) | st.text(min_size=1, max_size=40),
    json_values | st.sampled_from(["", "   ", "x" * 4001]),
)
emojis = mostly(
    st.sampled_from(["👍", "🎉", "❤️", "😂"]),
    json_values | st.sampled_from(["not-an-emoji", "", "👍👍", "❤"]),
)
change_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["edit", "delete", "react", "unreact"]), "id": message_ids},
    optional={"body": bodies, "emoji": emojis},
)
reply_frames = st.fixed_dictionaries(
    {"body": bodies, "reply_to": message_ids},
    optional={
        "type": st.just("message"),
        "client_id": mostly(st.uuids().map(str), json_values),
    },
)


def _ids_filled_in(room: Room, frame):
    """The frame with each stand-in replaced by a real message id of the room."""
    if isinstance(frame, Theirs | Quoted):  # the first message of that author: _seed's
        author = "bob" if isinstance(frame, Theirs) else "alice"
        return Message.objects.filter(room=room, author__username=author).order_by("seq")[0].pk
    if isinstance(frame, Recent):
        pks = list(Message.objects.filter(room=room).order_by("-seq")[: frame.back + 1])
        pk = pks[-1].pk if pks else 1
        return str(pk) if frame.as_text else pk
    if isinstance(frame, dict):
        return {key: _ids_filled_in(room, value) for key, value in frame.items()}
    return frame


def _seed(room: Room, alice, bob) -> None:
    """Alice's message and bob's reply to it, before the fuzz's probes."""
    quoted = services.message_send(room=room, author=alice, body="quoted").message
    services.message_send(room=room, author=bob, body="reply", reply_to=quoted.pk)


VERSION = re.compile(r'<article id="message-\d+" data-seq="\d+" data-version="(\d+)"')


def _assert_accounted(room: Room, before: int, replies: list[str]) -> None:
    """Every change the frame wrote reached its sender, once, in order; an error wrote
    nothing. ``replies``: what the socket sent from the frame on, up to and including the
    probe's acknowledgement (the last change: the probe took the room's last seq)."""
    after = Room.objects.values_list("last_seq", flat=True).get(pk=room.pk)
    sent = [int(v) for html in replies for v in VERSION.findall(html) if int(v) > before]
    assert sent == list(range(before + 1, after + 1)), (before, after, replies)
    if any('id="composer-error"' in html for html in replies):
        assert after == before + 1, replies  # only the probe


KNOWN_REPLIES = (
    'id="composer-error"',
    'id="message-list"',
    'id="chat-reload"',
    'id="message-ack"',  # a reply frame whose client_id an earlier example used
)


async def _assert_alive(socket, probe: str) -> list[str]:
    """Send a valid message and read until its acknowledgement; return every frame read,
    the acknowledgement last.

    One exception: a resume from far behind is answered with "reload your history"
    (``chat-reload``), and the cursor jumps to the room's end, which may already include the
    probe; the page then gets the probe from the history it reloads. A fresh probe sent after
    that must be acknowledged."""
    replies = []
    for _attempt in range(3):
        client_id = str(uuid.uuid4())
        await socket.send_to(text_data=json.dumps({"body": probe, "client_id": client_id}))
        while True:
            output = await socket.receive_output(timeout=3)
            assert output["type"] == "websocket.send", output  # not a close
            html = output["text"]
            if html.startswith('{"type":"typing"'):
                # An ephemeral typing frame (an example's own {"type": "typing"}): it comes
                # when the hub's coalescing lets it, not in answer to anything.
                continue
            replies.append(html)
            assert any(marker in html for marker in KNOWN_REPLIES), html[:300]
            if f'data-client-id="{client_id}"' in html and 'id="message-list"' in html:
                return replies
            if 'id="chat-reload"' in html:
                break  # the acknowledgement may be covered by the reload: probe again
    raise AssertionError("the socket kept asking for reloads")


def _run_fuzz(
    public_room, alice, caplog, strategy, max_examples: int, *, accounted: bool = False
) -> None:
    """Send each example's frame, then a probe. ``accounted``: the examples are JSON objects
    (which may hold ``Recent``/``Theirs`` stand-ins) and every change one writes must reach
    the socket (``_assert_accounted``)."""
    caplog.set_level(logging.WARNING)
    loop = asyncio.new_event_loop()
    state = {"socket": None, "count": 0}

    def fresh_socket():
        # A socket that failed (or timed out: the communicator cancels the app) cannot tell
        # anything about the next example; each example after a failure gets a new one, so
        # hypothesis shrinks towards the frame that broke it.
        if state["socket"] is None:
            state["socket"] = loop.run_until_complete(joined(public_room.pk, alice))
        return state["socket"]

    @settings(parent=FUZZ, max_examples=max_examples)
    @given(frame=strategy)
    def one_frame(frame):
        state["count"] += 1
        socket = fresh_socket()
        try:
            if accounted:
                before = Room.objects.values_list("last_seq", flat=True).get(pk=public_room.pk)
                frame = _dump(_ids_filled_in(public_room, frame))
            # send_input, not send_to: a server delivers empty frames too, send_to refuses them.
            key = "bytes" if isinstance(frame, bytes) else "text"
            loop.run_until_complete(socket.send_input({"type": "websocket.receive", key: frame}))
            replies = loop.run_until_complete(_assert_alive(socket, f"probe {state['count']}"))
            if accounted:
                _assert_accounted(public_room, before, replies)
        except BaseException:
            state["socket"] = None
            raise

    try:
        one_frame()
        if state["socket"] is not None:
            # Longer than the communicator's 1 s default: the last socket's leave may wait
            # up to fanout.CANCEL_AGAIN_SECONDS for the hub's reader to stop.
            loop.run_until_complete(state["socket"].disconnect(timeout=10))
    finally:
        # What the sockets left running on this loop (a hub's timers: presence's close
        # grace, a refresh) is cancelled and awaited before the loop closes: closing it with
        # them pending logged "Task was destroyed but it is pending!" (seen on a loaded
        # machine, where the grace outlived the last disconnect).
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
    loud = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not loud, [(r.name, r.getMessage()) for r in loud]
    assert state["count"] >= max_examples // 2


def test_fuzz_text_and_json_frames(public_room, alice, caplog, unlimited):
    _run_fuzz(public_room, alice, caplog, frames, max_examples=120)


def test_fuzz_binary_frames(public_room, alice, caplog, unlimited):
    _run_fuzz(public_room, alice, caplog, st.binary(max_size=200), max_examples=15)


def test_a_huge_resume_does_not_silence_the_socket(public_room, alice, caplog, unlimited):
    """A client claiming to hold seq 10**30 must still get its own messages back."""
    _run_fuzz(
        public_room,
        alice,
        caplog,
        st.just(json.dumps({"type": "resume", "after_seq": 10**30})),
        max_examples=1,
    )


def test_resume_with_odd_digit_strings_is_an_error_not_a_dead_socket(
    public_room, alice, caplog, unlimited
):
    """Found by the fuzzer: "²" passes str.isdigit() but int() refuses it, and so does a
    5000-digit string; the ValueError escaped receive() and killed the socket."""
    odd = st.sampled_from(["²", "1" * 5000, "١٢", "9" * 30, " 1", "0x10"])
    frames_ = odd.map(lambda text: _dump({"type": "resume", "after_seq": text}))
    _run_fuzz(public_room, alice, caplog, frames_, max_examples=12)


def test_fuzz_change_frames(public_room, alice, bob, caplog, unlimited):
    """edit / delete / react / unreact with any id, body and emoji: an error fragment or the
    change (each change it wrote once, to the sender too), never a dead socket or an error in
    the log. Some ids are real messages (alice's probes, her message with bob's reply to it,
    that reply), most are not."""
    _seed(public_room, alice, bob)
    _run_fuzz(public_room, alice, caplog, change_frames, max_examples=150, accounted=True)


def test_fuzz_message_frames_with_an_odd_reply_to(public_room, alice, bob, caplog, unlimited):
    _seed(public_room, alice, bob)
    _run_fuzz(public_room, alice, caplog, reply_frames, max_examples=60, accounted=True)
