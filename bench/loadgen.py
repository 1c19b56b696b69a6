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
from collections import Counter
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
    hello: Callable[[int], bytes | None] = lambda room: None  # first frame after connect


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
            a = data.find(b"~", pos + 2)
            b = data.find(b"~", a + 1)
            if a < 0 or b < 0:
                return
            mid = int(data[a + 1 : b])
            if mid >= self.lo:
                key = mid * 1_000_000 + client
                if key in self.seen:
                    self.duplicates += 1
                else:
                    self.seen.add(key)
                    self.latencies.append(at - int(data[pos + 2 : a]))
            pos = data.find(MARK, b)


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
            hello = proto.hello(room)
            if hello is not None:
                client.send(hello)
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
    total = max(1, int(rate * seconds))
    interval = 1e9 / rate
    start = now_ns() + 20_000_000
    worst_lag = 0
    turn: Counter = Counter()
    for k in range(total):
        sched = start + int(k * interval)
        wait = sched - now_ns()
        if wait > 0:
            await asyncio.sleep(wait / 1e9)
        elif k % 50 == 0:
            await asyncio.sleep(0)  # behind schedule: still let the receivers run
        worst_lag = max(worst_lag, now_ns() - sched)
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
    return {"messages": total, "sender_worst_lag_ms": round(worst_lag / 1e6, 1)}


async def drain(sink: Sink, *, timeout: float) -> None:
    """Wait until every expected delivery arrived, or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(sink.latencies) < sink.expected:
        await asyncio.sleep(0.05)


def summary(sink: Sink) -> dict:
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


def parley_protocol(
    port: int, sessions: list[str], room_ids: dict[int, int], last_seq: dict[int, int]
) -> Protocol:
    """``room_ids`` maps the scenario's room keys to Parley room pks; ``last_seq`` (by pk) is
    what a client that already saw the history resumes after."""
    origin = ("Origin", f"http://127.0.0.1:{port}")
    return Protocol(
        url=lambda room: f"ws://127.0.0.1:{port}/ws/chat/room/{room_ids[room]}/",
        headers=lambda i: [origin, ("Cookie", f"sessionid={sessions[i % len(sessions)]}")],
        encode=lambda body: json.dumps(
            {"type": "message", "body": body, "client_id": str(uuid.uuid4())}
        ).encode(),
        hello=lambda room: json.dumps(
            {"type": "resume", "after_seq": last_seq.get(room_ids[room], 0)}
        ).encode(),
    )
