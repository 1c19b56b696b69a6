"""The load generator: picows clients on one uvloop event loop, an open-loop sender, and the
latency bookkeeping.

Every message body starts with ``~T<scheduled send time, ns>~<message id>~``. Sends follow a
fixed schedule whatever the server does (open loop), and a delivery's latency is measured from
the *scheduled* time, so a stalled server or a late sender shows up as latency instead of being
hidden (no coordinated omission). HTML escaping leaves ``~``, digits and ``T`` alone, so the
same marker is found in raw frames (T0), JSON (T1) and Parley's HTML fragments (T2).
"""

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

MARK = b"~T"
BODY_BYTES = 200  # message size of the figures


def now_ns() -> int:
    return time.monotonic_ns()


@dataclass
class Protocol:
    """How one target is spoken to."""

    url: Callable[[int], str]  # room key -> websocket URL
    headers: Callable[[int], list[tuple[str, str]]]  # client index -> handshake headers
    encode: Callable[[str], bytes]  # message body -> frame payload
    # The first frames after connect (room key -> frame payloads).
    hello: Callable[[int], list[bytes]] = lambda room: []


class Sink:
    """Collects deliveries for the messages of one measurement window (ids ``lo`` and up)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.lo = 1 << 62  # nothing counts until a window opens
        self.hi = 1 << 62
        self.latencies: list[int] = []
        self.seen: set[int] = set()
        self.duplicates = 0
        self.expected = 0
        self.frames = 0

    def open_window(self, first_id: int) -> None:
        self.reset()
        self.lo = first_id

    def record(self, client: int, data: bytes, at: int) -> None:
        self.frames += 1
        pos = data.find(MARK)
        while pos >= 0:
            end = self.take(client, data, pos, at)
            if end < 0:
                return
            pos = data.find(MARK, end)

    def take(self, client: int, data: bytes, pos: int, at: int) -> int:
        """Count the marker ``make_body`` wrote at ``pos`` (``MARK<sent ns>~<id>~``) for this
        client: a delivery of the window, or a duplicate. Where it ends, or -1 if cut short."""
        a = data.find(b"~", pos + 2)
        b = data.find(b"~", a + 1)
        if a < 0 or b < 0:
            return -1
        mid = int(data[a + 1 : b])
        if mid >= self.lo:
            key = mid * 1_000_000 + client
            if key in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(key)
                self.latencies.append(at - int(data[pos + 2 : a]))
        return b


class Client(WSListener):
    def __init__(self, index: int, room: int, sink: Sink) -> None:
        self.index = index
        self.room = room
        self.sink = sink
        self.transport = None
        self.open = False
        self.close_code: int | None = None

    def on_ws_connected(self, transport) -> None:
        self.transport = transport
        self.open = True

    def on_ws_frame(self, transport, frame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            self.sink.record(self.index, frame.get_payload_as_bytes(), now_ns())
        elif kind == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            self.open = False
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self.open = False

    def send(self, payload: bytes) -> None:
        self.transport.send(WSMsgType.TEXT, payload)

    def stop_reading(self) -> None:
        """Stop reading from the socket (a frozen browser tab) and shrink the receive buffer,
        so the server's own buffers fill quickly."""
        raw = self.transport.underlying_transport
        sock = raw.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.pause_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            with contextlib.suppress(Exception):  # already gone
                self.transport.send_close(WSCloseCode.GOING_AWAY)
            self.transport.disconnect()
        self.open = False


@dataclass
class ConnectResult:
    clients: list[Client]
    failures: Counter = field(default_factory=Counter)
    seconds: float = 0.0


async def connect_many(
    proto: Protocol,
    plan: list[tuple[int, int]],  # (client index, room key)
    sink: Sink,
    *,
    concurrency: int,
    timeout: float = 20.0,
) -> ConnectResult:
    """Open one websocket per (index, room) with at most ``concurrency`` handshakes in flight."""
    gate = asyncio.Semaphore(concurrency)
    result = ConnectResult(clients=[])

    async def one(index: int, room: int) -> None:
        async with gate:
            try:
                _, client = await asyncio.wait_for(
                    ws_connect(
                        lambda: Client(index, room, sink),
                        proto.url(room),
                        extra_headers=proto.headers(index),
                        websocket_handshake_timeout=timeout,
                        enable_auto_pong=True,
                    ),
                    timeout + 1,
                )
            except Exception as exc:  # noqa: BLE001 - every failure is a data point
                result.failures[_reason(exc)] += 1
                return
            for frame in proto.hello(room):
                client.send(frame)
            result.clients.append(client)

    started = time.perf_counter()
    await asyncio.gather(*(one(i, r) for i, r in plan))
    result.seconds = time.perf_counter() - started
    return result


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    for code in ("500", "403", "404", "400", "502", "503"):
        if f" {code}" in text or text.startswith(code):
            return f"HTTP {code}"
    return type(exc).__name__ + (f": {text[:60]}" if text else "")


def make_body(sched: int, mid: int) -> str:
    head = f"~T{sched}~{mid}~ "
    return head + "x" * max(0, BODY_BYTES - len(head))


class Pace:
    """The open loop's clock: ``rate`` events per second for ``seconds``, each due at its
    scheduled time whatever the server does. ``async for k, sched, now in pace`` waits until
    event k is due (behind schedule it does not wait, but still lets the receivers run every 50
    events) and keeps the sender's own worst lateness."""

    def __init__(self, rate: float, seconds: float):
        self.total = max(1, int(rate * seconds))
        self.interval = 1e9 / rate
        self.worst_lag = 0

    @property
    def worst_lag_ms(self) -> float:
        return round(self.worst_lag / 1e6, 1)

    async def __aiter__(self):
        start = now_ns() + 20_000_000
        for k in range(self.total):
            sched = start + int(k * self.interval)
            wait = sched - now_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            elif k % 50 == 0:
                await asyncio.sleep(0)
            now = now_ns()
            self.worst_lag = max(self.worst_lag, now - sched)
            yield k, sched, now


async def open_loop(
    proto: Protocol,
    rooms: dict[int, list[Client]],
    sink: Sink,
    *,
    rate: float,
    seconds: float,
    next_id: Callable[[], int],
    senders: dict[int, list[Client]] | None = None,
) -> dict:
    """Send ``rate`` messages per second in total, round-robin over ``rooms`` (and over each
    room's senders), for ``seconds``; every message is due at its scheduled time and stamped with
    it. Returns the sender's own lateness (how far behind schedule sends went out)."""
    keys = list(rooms)
    senders = senders or rooms
    pace = Pace(rate, seconds)
    turn: Counter = Counter()
    async for k, sched, _now in pace:
        room = keys[k % len(keys)]
        members = [c for c in rooms[room] if c.open]
        candidates = [c for c in senders[room] if c.open]
        if not candidates:
            continue
        sender = candidates[turn[room] % len(candidates)]
        turn[room] += 1
        mid = next_id()
        sink.expected += len(members)
        sender.send(proto.encode(make_body(sched, mid)))
    return {"messages": pace.total, "sender_worst_lag_ms": pace.worst_lag_ms}


async def drain(sink: Sink, *, timeout: float) -> None:
    """Wait until every expected delivery arrived, or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(sink.latencies) < sink.expected:
        await asyncio.sleep(0.05)


def summary(sink) -> dict:
    lat = sorted(sink.latencies)
    n = len(lat)

    def pct(p: float) -> float | None:
        if not n:
            return None
        return round(lat[min(n - 1, int(n * p))] / 1e6, 1)

    return {
        "expected": sink.expected,
        "delivered": n,
        "lost": max(0, sink.expected - n),
        "duplicates": sink.duplicates,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] / 1e6, 1) if n else None,
    }


# --- Parley's JSON frames (S16) ------------------------------------------------------------------
#
# A socket opened with ``?format=json`` gets one JSON object per change:
# ``{"type":"message","room":R,"seq":S,"message":{"id":…,"author":{…},"body":"~T…~7~ xx…",
# "html":"<p>~T…~7~ xx…</p>",…}}`` (compact separators, keys in this order: realtime.json_text).
# The marker is there twice (body and html), so ``Sink.record`` would count every delivery
# once more as a duplicate. ``JsonSink`` reads the top-level seq and the marker at the start of
# ``message.body`` with a few ``bytes.find`` (no json.loads: the load generator's core also
# reads 500 sockets), and checks the seqs: each socket's must grow by one (a repeat is a
# duplicate, a jump a lost change). HTML frames (the other variant's sockets) go through
# ``Sink.record`` as in S2, so both variants share one sink and one accounting.

JSON_MESSAGE = b'{"type":"message",'
JSON_SEQ = b'"seq":'
JSON_BODY = b'"body":"'


class JsonSink(Sink):
    def __init__(self) -> None:
        self.json_clients: set[int] = set()  # the indices of the ?format=json sockets
        self.seqs: dict[int, int] = {}  # client -> the highest seq it got (for the run)
        self.html_on_json = 0  # an HTML frame on a ?format=json socket (for the run): the
        # tree ignored the query (a baseline before issue 13)
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.seq_repeats = 0  # a seq a socket already had (or older): a duplicate
        self.seq_gaps = 0  # a seq more than one past the socket's last: something skipped
        self.json_messages = 0
        self.other_json = 0  # caught_up, error, …
        self.errors = 0

    def record(self, client: int, data: bytes, at: int) -> None:
        if not data.startswith(JSON_MESSAGE):
            if data[:1] != b"{":
                if client in self.json_clients:
                    self.html_on_json += 1
                super().record(client, data, at)  # an HTML fragment (S2's path)
                return
            self.frames += 1
            self.other_json += 1
            if data.startswith(b'{"type":"error"'):
                self.errors += 1
            return
        self.frames += 1
        self.json_messages += 1
        s = data.find(JSON_SEQ, len(JSON_MESSAGE)) + len(JSON_SEQ)
        e = data.find(b",", s)
        seq = int(data[s:e])
        last = self.seqs.get(client)
        if last is not None and seq <= last:
            self.seq_repeats += 1
        else:
            if last is not None and seq > last + 1:
                self.seq_gaps += 1
            self.seqs[client] = seq
        pos = data.find(JSON_BODY, e) + len(JSON_BODY)
        if data[pos : pos + 2] == MARK:  # (the body only: ``html`` repeats the marker)
            self.take(client, data, pos, at)


# --- protocols of the three targets ---------------------------------------------------------


def raw_protocol(port: int) -> Protocol:
    return Protocol(
        url=lambda room: f"ws://127.0.0.1:{port}/room/{room}",
        headers=lambda i: [],
        encode=str.encode,
    )


def tutorial_protocol(port: int) -> Protocol:
    origin = [("Origin", f"http://127.0.0.1:{port}")]
    return Protocol(
        url=lambda room: f"ws://127.0.0.1:{port}/ws/chat/room{room}/",
        headers=lambda i: origin,
        encode=lambda body: json.dumps({"message": body}).encode(),
    )


# The room key of a page that shows no room (the users page, settings): ``/ws/user/``.
USER_SOCKET = -1


def parley_protocol(
    port: int,
    sessions: list[str],
    room_ids: dict[int, int],
    last_seq: dict[int, int],
    live: bool = False,
    json_rooms: frozenset[int] = frozenset(),
) -> Protocol:
    """``room_ids`` maps the scenario's room keys to Parley room pks; ``last_seq`` (by pk) is
    what a client that already saw the history resumes after. ``live`` (a tree since issue
    10's live reading): each client is a page focused at the bottom of its room, as a person
    in the room is — after its resume it sends ``{"type": "active", "seq": N}``, so the
    server reads each new message for it as it comes. The sockets of ``json_rooms`` (room
    keys, S16) are bots: ``?format=json`` (issue 13's JSON frames), ``resume`` only (a bot
    has no page to be focused)."""
    origin = ("Origin", f"http://127.0.0.1:{port}")

    def hello(room: int) -> list[bytes]:
        if room == USER_SOCKET:
            return []  # a page that shows no room: its user stream only
        after = last_seq.get(room_ids[room], 0)
        frames = [json.dumps({"type": "resume", "after_seq": after}).encode()]
        if live and room not in json_rooms:
            frames.append(json.dumps({"type": "active", "seq": after}).encode())
        return frames

    def url(room: int) -> str:
        if room == USER_SOCKET:
            return f"ws://127.0.0.1:{port}/ws/user/"
        query = "?format=json" if room in json_rooms else ""
        return f"ws://127.0.0.1:{port}/ws/chat/room/{room_ids[room]}/{query}"

    return Protocol(
        url=url,
        headers=lambda i: [origin, ("Cookie", f"sessionid={sessions[i % len(sessions)]}")],
        encode=lambda body: json.dumps(
            {"type": "message", "body": body, "client_id": str(uuid.uuid4())}
        ).encode(),
        hello=hello,
    )


# --- Parley's presence (S11, S13) --------------------------------------------------------------
#
# A page tells its socket whose dots it shows (``{"type": "presence-watch", "users": [ids]}``),
# is answered ``{"type": "presence", "states": {id: state}}``, then gets a live ``{"type":
# "presence", "user": id, "presence": state}`` frame per change of one of them.

PRESENCE_HEAD = b'{"type":"presence"'


class PresenceSink(Sink):
    """Counts presence frames: the answers to ``presence-watch`` (per client), and the live
    frames (per user they are about, with their arrival times); every other frame is ignored."""

    def reset(self) -> None:
        super().reset()
        self.answers: dict[int, dict] = {}  # client -> the states it was answered
        self.live: list[tuple[int, int, str, int]] = []  # (client, user, state, time ns)

    def record(self, client: int, data: bytes, at: int) -> None:
        self.frames += 1
        if not data.startswith(PRESENCE_HEAD):
            return
        frame = json.loads(data)
        if "states" in frame:
            self.answers[client] = frame["states"]
        else:
            self.live.append((client, frame.get("user"), frame.get("presence"), at))

    def live_count(self, since: int = 0) -> int:
        return sum(1 for *_, at in self.live if at >= since)


def watch_frame(user_ids: list[int]) -> bytes:
    return json.dumps({"type": "presence-watch", "users": user_ids}).encode()


ACTIVITY_FRAME = json.dumps({"type": "activity"}).encode()


async def activity_loop(
    clients: list[Client], *, period: float, seconds: float, first: int = 0
) -> int:
    """Each client sends ``{"type": "activity"}`` once every ``period`` seconds, the clients
    evenly staggered (``len(clients) / period`` frames/s in all), for ``seconds``, the first
    frame to client ``first`` (a loop that goes on from where the last one stopped). Returns
    the frames due."""
    if not clients:
        return 0
    pace = Pace(len(clients) / period, seconds)
    sent = 0
    async for k, _sched, _now in pace:
        client = clients[(first + k) % len(clients)]
        if client.open:
            client.send(ACTIVITY_FRAME)
            sent += 1
    return sent


# --- Parley's sidebars (S10) ------------------------------------------------------------------
#
# A member viewing another room learns of a message in hers from an ``unread`` frame on her
# socket: ``{"type": "unread", "room": pk, "unread": n, ...}``. In a fresh room where every
# event is a new message by someone else, her n-th count is the message of seq n, so the frame
# that first shows a count of at least n delivers message n; the viewers' articles tell the
# seq of each marker (``data-seq`` beside it), hence its scheduled send time.

SEQ_ATTR = b'data-seq="'


class BadgeSink(Sink):
    """``Sink`` for the room's viewers, plus the badge deliveries of the ``watchers``."""

    def __init__(self, room_pk: int) -> None:
        self.room_pk = room_pk
        self.watchers: set[int] = set()
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.sched_by_seq: dict[int, int] = {}
        self.counts: dict[int, int] = {}  # watcher -> the highest count it was sent
        self.badges: list[tuple[int, int]] = []  # (seq, time of the frame that showed it)
        self.badges_expected = 0
        self.seq_base: int | None = None

    def record(self, client: int, data: bytes, at: int) -> None:
        if data[:1] == b"{":
            if client in self.watchers and self.lo < (1 << 62):
                self._badge(client, data, at)
            return
        super().record(client, data, at)
        pos = data.find(SEQ_ATTR)
        while pos >= 0:
            end = data.find(b'"', pos + len(SEQ_ATTR))
            mark = data.find(MARK, end)
            if end < 0 or mark < 0:
                return
            seq = int(data[pos + len(SEQ_ATTR) : end])
            a = data.find(b"~", mark + 2)
            self.sched_by_seq.setdefault(seq, int(data[mark + 2 : a]))
            pos = data.find(SEQ_ATTR, a)

    def _badge(self, client: int, data: bytes, at: int) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            return
        if frame.get("type") != "unread" or frame.get("room") != self.room_pk:
            return
        count = int(frame.get("unread") or 0)
        seen = self.counts.get(client, 0)
        for n in range(seen + 1, count + 1):  # a frame may cover several messages
            self.badges.append((n, at))
        self.counts[client] = max(seen, count)

    def badge_summary(self) -> dict:
        lat = sorted(at - self.sched_by_seq[n] for n, at in self.badges if n in self.sched_by_seq)
        n = len(lat)

        def pct(p: float) -> float | None:
            return round(lat[min(n - 1, int(n * p))] / 1e6, 1) if n else None

        return {
            "expected": self.badges_expected,
            "delivered": n,
            "lost": max(0, self.badges_expected - n),
            "unattributed": len(self.badges) - n,
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] / 1e6, 1) if n else None,
        }


# --- Parley's timeline changes (S8) ------------------------------------------------------------
#
# An edit or a reaction reaches every socket of the room as the message's whole current
# ``<article id="message-<pk>" data-seq data-version …>``, with the message's old body (a
# reaction) or a new one (an edit). So the marker alone cannot tell deliveries apart: a reaction
# carries no marker of its own, and every later change re-delivers the marker of the body. The
# ``ChangeSink`` counts deliveries by version instead:
#
# - every event the load generator sends (a message, an edit, a reaction added or removed) is
#   *attributed* the version under which the server published it: the first time any client
#   sees a version of message ``pk`` higher than every version seen of it so far, that version
#   belongs to the oldest change sent for ``pk`` that has none yet (a new message: to the
#   message whose marker the article carries). This is exact because the changes of one message
#   never overlap in flight: ``Pool`` leaves ``COOLDOWN`` seconds between two changes of the
#   same message (far above the 250 ms limit of a passing step);
# - a client has an event once it holds that message at that version or later (a catch-up that
#   brings only the newest state of a message delivers every change folded into it). Latency is
#   from the event's scheduled send to that first delivery;
# - an article at the version the client already holds is a duplicate; one below it is stale
#   (a version going backwards on one socket: a bug, reported).

ARTICLE = b'<article id="message-'
VERSION = b'data-version="'
# A Parley before issue 9 (a --baseline commit) has no versions: a message is its seq.
SEQ = b'data-seq="'
ARTICLE_END = b"</article>"
ERROR_FRAME = b'id="composer-error"'
# Reactions the load generator toggles (all in Parley's shipped list).
EMOJI = ("\U0001f44d", "\U0001f389", "\U0001f440", "\U0001f525")
COOLDOWN = 2.0


class Event:
    __slots__ = ("kind", "sched", "mid", "pk", "version", "window")

    def __init__(self, kind: str, sched: int, mid: int, pk: int | None, window: int) -> None:
        self.kind = kind  # "message", "edit", "reaction"
        self.sched = sched
        self.mid = mid
        self.pk = pk
        self.version: int | None = None
        self.window = window


class ChangeSink:
    """Deliveries of Parley's timeline events (new messages, edits, reactions), by version. The
    attribution of versions to events lives as long as the sink (one scenario); the accounting
    (latencies, duplicates, what each client holds) is per measurement window."""

    def __init__(self) -> None:
        self.window = 0
        self.active = False
        self.top: dict[int, int] = {}  # pk -> highest version seen at any client
        self.pending_new: dict[int, Event] = {}  # marker id -> message not seen yet
        self.pending_changes: dict[int, deque] = {}  # pk -> changes without a version yet
        self.versions: dict[int, list[tuple[int, Event]]] = {}  # pk -> [(version, event)]
        self.unexplained = 0  # a new version no event of ours accounts for
        self.misattributed = 0  # an edit's version whose article lacks the edit's marker
        self.reset()

    def reset(self) -> None:
        self.latencies: list[int] = []
        self.by_kind: dict[str, list[int]] = {"message": [], "edit": [], "reaction": []}
        self.expected = 0
        self.expected_by_kind: Counter = Counter()
        self.duplicates = 0
        self.stale = 0
        self.errors = 0
        self.frames = 0
        self.last: dict[int, int] = {}  # pk << 16 | client -> version this client holds

    def open_window(self) -> None:
        self.reset()
        self.window += 1
        self.active = True

    def close_window(self) -> None:
        self.active = False

    # The sender's side: register before sending.
    def sent_message(self, sched: int, mid: int, members: int) -> None:
        self.pending_new[mid] = Event("message", sched, mid, None, self.window)
        self._expect("message", members)

    def sent_change(self, kind: str, sched: int, mid: int, pk: int, members: int) -> None:
        event = Event(kind, sched, mid, pk, self.window)
        self.pending_changes.setdefault(pk, deque()).append(event)
        self._expect(kind, members)

    def _expect(self, kind: str, members: int) -> None:
        if self.active:
            self.expected += members
            self.expected_by_kind[kind] += members

    # The receiving side.
    def record(self, client: int, data: bytes, at: int) -> None:
        self.frames += 1
        pos = data.find(ARTICLE)
        if pos < 0:
            if ERROR_FRAME in data:
                self.errors += 1
            return
        while pos >= 0:
            start = pos + len(ARTICLE)
            quote = data.find(b'"', start)
            tag_end = data.find(b">", quote)  # the attributes: this article's, no other's
            if quote < 0 or tag_end < 0:
                return
            vpos = data.find(VERSION, quote, tag_end)
            if vpos < 0:
                vpos = data.find(SEQ, quote, tag_end)
                if vpos < 0:
                    return
                vstart = vpos + len(SEQ)
            else:
                vstart = vpos + len(VERSION)
            vend = data.find(b'"', vstart)
            pk, version = int(data[start:quote]), int(data[vstart:vend])
            nxt = data.find(ARTICLE, vend)
            if version > self.top.get(pk, 0):
                self.top[pk] = version
                end = data.find(ARTICLE_END, vend)
                self._attribute(pk, version, data, vend, end if end >= 0 else len(data))
            if self.active:
                self._deliver(client, pk, version, at)
            pos = nxt

    def _attribute(self, pk: int, version: int, data: bytes, start: int, end: int) -> None:
        queue = self.pending_changes.get(pk)
        if queue:
            event = queue.popleft()
            if event.kind == "edit" and data.find(b"~%d~" % event.mid, start, end) < 0:
                self.misattributed += 1
        else:
            mark = data.find(MARK, start, end)
            event = None
            if mark >= 0:
                a = data.find(b"~", mark + 2)
                b = data.find(b"~", a + 1)
                event = self.pending_new.pop(int(data[a + 1 : b]), None)
            if event is None:
                self.unexplained += 1
                return
            event.pk = pk
        event.version = version
        self.versions.setdefault(pk, []).append((version, event))

    def _deliver(self, client: int, pk: int, version: int, at: int) -> None:
        key = pk << 16 | client
        held = self.last.get(key, 0)
        if version <= held:
            if version == held:
                self.duplicates += 1
            else:
                self.stale += 1
            return
        self.last[key] = version
        events = self.versions.get(pk)
        if not events:
            return
        window = self.window
        for i in range(len(events) - 1, -1, -1):  # newest first: usually only the last one
            v, event = events[i]
            if v <= held:
                break
            if v <= version and event.window == window:
                latency = at - event.sched
                self.latencies.append(latency)
                self.by_kind[event.kind].append(latency)


@dataclass
class Pool:
    """The messages the changes are made to (seeded before the clients connect), and what the
    load generator did to them: which reactions are on, when each was last changed."""

    messages: list[tuple[int, int]]  # (message pk, index of its author's client)
    cooldown_ns: int = int(COOLDOWN * 1e9)
    last_change: dict[int, int] = field(default_factory=dict)
    reacted: set = field(default_factory=set)
    edit_at: int = 0
    react_at: int = 0
    skipped: int = 0  # a change that found every message cooling down (sent as a message)

    def _next(self, attr: str, now: int, ok: Callable[[int, int], bool]) -> tuple[int, int] | None:
        start = getattr(self, attr)
        n = len(self.messages)
        for step in range(n):
            pk, author = self.messages[(start + step) % n]
            if now - self.last_change.get(pk, -self.cooldown_ns) >= self.cooldown_ns and ok(
                pk, author
            ):
                setattr(self, attr, (start + step + 1) % n)
                self.last_change[pk] = now
                return pk, author
        self.skipped += 1
        return None

    def edit_target(self, now: int, open_authors: dict[int, "Client"]):
        """A message whose author's socket is open, and that author's client."""
        found = self._next("edit_at", now, lambda pk, author: author in open_authors)
        return (found[0], open_authors[found[1]]) if found else None

    def react_target(self, now: int, user: int) -> tuple[int, str, bool] | None:
        """(message pk, emoji, add?) for a reaction by the client ``user``: toggles."""
        found = self._next("react_at", now, lambda pk, author: True)
        if found is None:
            return None
        pk = found[0]
        emoji = EMOJI[(pk + user) % len(EMOJI)]
        key = (pk, user, emoji)
        add = key not in self.reacted
        if add:
            self.reacted.add(key)
        else:
            self.reacted.discard(key)
        return pk, emoji, add


def is_change(k: int, fraction: float) -> bool:
    """Event ``k`` of a stream where ``fraction`` of the events are changes, evenly spread."""
    return fraction > 0 and int((k + 1) * fraction) > int(k * fraction)


async def changes_loop(
    proto: Protocol,
    clients: list[Client],
    sink: ChangeSink,
    pool: Pool,
    *,
    rate: float,
    seconds: float,
    fraction: float,
    next_id: Callable[[], int],
) -> dict:
    """``open_loop`` for one Parley room where ``fraction`` of the events are changes, half of
    them edits (by the message's author, of one of its own messages: a new 200-byte body with a
    new marker), half reactions toggled on or off (by the sender whose turn it is). Messages are
    sent round-robin over the clients, as in ``open_loop``."""
    pace = Pace(rate, seconds)
    turn = 0
    changes = 0
    sent: Counter = Counter()
    async for k, sched, now in pace:
        live = [c for c in clients if c.open]
        if not live:
            continue
        members = len(live)
        mid = next_id()
        frame = None
        if is_change(k, fraction):
            changes += 1
            if changes % 2:
                found = pool.edit_target(now, {c.index: c for c in live})
                if found is not None:
                    pk, sender = found
                    sink.sent_change("edit", sched, mid, pk, members)
                    body = make_body(sched, mid)
                    frame = {"type": "edit", "id": pk, "body": body}
                    sent["edit"] += 1
            else:
                sender = live[turn % members]
                turn += 1
                found = pool.react_target(now, sender.index)
                if found is not None:
                    pk, emoji, add = found
                    sink.sent_change("reaction", sched, mid, pk, members)
                    frame = {"type": "react" if add else "unreact", "id": pk, "emoji": emoji}
                    sent["react" if add else "unreact"] += 1
        if frame is not None:
            sender.send(json.dumps(frame).encode())
            continue
        sender = live[turn % members]
        turn += 1
        sink.sent_message(sched, mid, members)
        sender.send(proto.encode(make_body(sched, mid)))
        sent["message"] += 1
    return {"events": pace.total, "sent": dict(sent), "sender_worst_lag_ms": pace.worst_lag_ms}


def kind_summary(sink: ChangeSink) -> dict:
    """p50/p99 and losses per kind of event, and the sink's own checks."""
    out = {}
    for kind, lat in sink.by_kind.items():
        expected = sink.expected_by_kind.get(kind, 0)
        if not expected:
            continue
        lat = sorted(lat)
        n = len(lat)
        out[kind] = {
            "expected": expected,
            "delivered": n,
            "p50_ms": round(lat[n // 2] / 1e6, 1) if n else None,
            "p99_ms": round(lat[min(n - 1, int(n * 0.99))] / 1e6, 1) if n else None,
        }
    out["stale"] = sink.stale
    out["error_frames"] = sink.errors
    out["unexplained_versions"] = sink.unexplained
    out["misattributed_edits"] = sink.misattributed
    return out
