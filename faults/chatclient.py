"""A protocol client for the fault suite: what a well-behaved page or bot does, and what it saw.

It speaks the websocket protocol of the README: on every open it sends
``{"type": "resume", "after_seq": <highest version it holds>}``; it keeps one copy per message
id, replaced by an article of a higher ``data-version`` (an edit, a delete, a reaction); on any
close except 4401/4404 it reconnects with backoff, to the next server in its list (as a load
balancer would). ``Sender`` adds sending with a client_id, waiting for the acknowledgement
(the article carrying that data-client-id) and resending the same client_id after a timeout or a
reconnect. Every await is bounded.
"""

import asyncio
import contextlib
import json
import random
import re
import socket
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

ARTICLE = re.compile(r'<article id="message-(\d+)" data-seq="(\d+)"([^>]*)>')
WHOLE_ARTICLE = re.compile(r'<article id="message-(\d+)"[^>]*>.*?</article>', re.S)
VERSION = re.compile(r'data-version="(\d+)"')
CLIENT_ID = re.compile(r'data-client-id="([0-9a-fA-F-]{32,36})"')
ERROR = re.compile(r'<div id="composer-error"[^>]*>(.*?)</div>', re.S)
# A retried client_id this socket already had is acknowledged by name, not with its article.
ACK = re.compile(r'<div id="message-ack"[^>]*?data-client-id="([^"]*)" data-message-id="(\d+)"')
RELOAD = re.compile(r'<div id="chat-reload"[^>]*data-reload="true"')
NO_RETRY = {4401, 4404}


def _version(match: re.Match) -> int:
    """An article's data-version (its data-seq when it has none: a server before issue 9)."""
    found = VERSION.search(match.group(3))
    return int(found.group(1)) if found else int(match.group(2))


def hexid(client_id: str) -> str:
    return client_id.replace("-", "").lower()


class Servers:
    """The server list a client may use; it moves on to the next one after a failure."""

    def __init__(self, urls: list[str]):
        self.urls = urls

    def pick(self, index: int) -> str:
        return self.urls[index % len(self.urls)]


@dataclass
class ChatClient:
    name: str
    session: str
    room: int
    servers: Servers
    start: int = 0
    max_queue: int | None = 16
    max_size: int | None = 2**22
    # A small kernel receive buffer (set before connecting): a client that stops reading then
    # pushes back on the server through TCP almost at once.
    rcvbuf: int | None = None
    # Set while the client reads; a slow reader clears it and stops calling recv().
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    # Keep each message's latest whole <article> (the changes case compares it with the
    # database); off for the load cases, whose thousands of articles need only their ids.
    keep_articles: bool = False
    # Set while the client may be connected; ``offline()`` clears it (and kills the socket).
    may_connect: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self):
        self.reading.set()
        self.may_connect.set()
        self.index = self.start
        self.held: dict[int, int] = {}  # message id -> seq
        self.versions: dict[int, int] = {}  # message id -> the version held
        self.articles_html: dict[int, str] = {}  # message id -> latest article (keep_articles)
        self.changes = 0  # articles that replaced a held one with a higher version
        self.stale = 0  # an article older than the version held: a version went backwards
        self.stale_samples: list[tuple[int, int, int]] = []  # (id, version held, version got)
        # (id, version) pairs that arrived more than once, while it held that version already.
        self.repeated_versions: list[tuple[int, int]] = []
        # (id, version) of the articles of the first frame after each open: the answer to
        # "resume".
        self.resume_answers: list[list[tuple[int, int]]] = []
        self.user_frames = 0
        self.by_seq: dict[int, int] = {}  # seq -> message id
        self.client_ids: dict[int, str] = {}  # message id -> client_id (hex)
        self.first_seen: dict[int, float] = {}
        self.arrival: dict[int, tuple[str, str]] = {}  # id -> (kind of frame, server)
        self.highest = 0  # the highest version held: what "resume" sends
        self.highest_seq = 0  # the highest seq (position) held: new ones must come above it
        self.frames = 0
        self.articles = 0
        self.dup_frames = 0  # an article for an id already held (a resend, an ack): harmless
        self.reordered = 0  # a new article with a seq below one already held
        self.conflicts = 0  # a second id for a seq already held: a real duplicate
        # Evidence for the report: (seq that came late, highest held then, what brought the
        # highest: "live"/"batch" frame and its client_id) for the first few reorderings.
        self.reorder_samples: list[tuple] = []
        self._highest_source: tuple = ()
        self._frame_kind = "live"
        self.errors: list[str] = []
        self.reloads = 0
        # Frames of several articles after the first one since the last open: the server
        # filling a gap from the database (the first is the answer to "resume").
        self.batch_frames = 0
        self.batched_articles = 0
        self._frames_since_open = 0
        self.fatal: int | None = None
        self.closes: list[int] = []
        self.connect_failures = 0
        self.reconnect_s: list[float] = []  # close → open + resume sent
        self.opens = 0
        self.open_times: list[float] = []
        self.ws = None
        self.connected = asyncio.Event()
        self.on_open = []  # callbacks: senders resend what is unacknowledged
        self.on_article = []  # callbacks(client_id_hex, message_id, seq, t)
        self.on_ack = []  # callbacks(client_id_hex, message_id, t): #message-ack frames
        self.task: asyncio.Task | None = None
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------------
    def begin(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"client-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self.reading.set()
        if self.ws is not None:
            with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
                await asyncio.wait_for(self.ws.close(), 3)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self.task, 5)

    async def run(self) -> None:
        closed_at: float | None = None
        attempt = 0
        while not self._stopping:
            if not self.may_connect.is_set():
                await self.may_connect.wait()
            url = f"{self.servers.pick(self.index)}/ws/chat/room/{self.room}/"
            http = url.replace("ws://", "http://", 1).split("/ws/")[0]
            try:
                extra = {"sock": await self._small_buffer_socket(url)} if self.rcvbuf else {}
                ws = await connect(
                    url,
                    origin=http,
                    additional_headers={"Cookie": f"sessionid={self.session}"},
                    open_timeout=5,
                    close_timeout=2,
                    max_queue=self.max_queue,
                    max_size=self.max_size,
                    proxy=None,
                    **extra,
                )
            except (OSError, TimeoutError, InvalidHandshake, InvalidStatus, ConnectionClosed):
                self.connect_failures += 1
                if closed_at is None:
                    closed_at = time.monotonic()
                attempt += 1
                self.index += 1
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
                continue
            self.ws = ws
            try:
                await ws.send(json.dumps({"type": "resume", "after_seq": self.highest}))
                now = time.monotonic()
                if closed_at is not None:
                    self.reconnect_s.append(now - closed_at)
                closed_at = None
                attempt = 0
                self.opens += 1
                self.open_times.append(now)
                self._frames_since_open = 0
                self.connected.set()
                for callback in list(self.on_open):
                    callback()
                async for frame in ws:
                    await self.handle(frame)
                    if not self.reading.is_set():
                        await self.reading.wait()
            except ConnectionClosed:
                pass
            except Exception as exc:  # a bug here must show up in the figures, not hang
                self.errors.append(f"client error: {exc!r}")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 3)
            finally:
                self.connected.clear()
                self.ws = None
            code = int(ws.close_code) if ws.close_code is not None else 1006
            if self._stopping:
                return
            self.closes.append(code)
            if code in NO_RETRY:
                self.fatal = code
                return
            closed_at = time.monotonic()
            self.index += 1
            attempt += 1
            await asyncio.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))

    async def offline(self) -> None:
        """Kill the socket without a closing handshake (a laptop lid, a dropped network: the
        server sees the connection reset) and stay disconnected until ``online()``."""
        self.may_connect.clear()
        ws = self.ws
        if ws is not None:
            ws.transport.abort()
        async with asyncio.timeout(10):
            while self.ws is not None:
                await asyncio.sleep(0.01)

    def online(self) -> None:
        self.may_connect.set()

    async def _small_buffer_socket(self, url: str) -> socket.socket:
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (host, int(port))), 5
            )
        except BaseException:
            sock.close()
            raise
        return sock

    # --- frames ----------------------------------------------------------------------------
    async def handle(self, frame) -> None:
        now = time.monotonic()
        self.frames += 1
        if isinstance(frame, bytes):
            self.errors.append("binary frame")
            return
        if frame.startswith("{"):
            # The user's own stream (sidebar counts, notifications: JSON), beside the room's
            # HTML stream on the same socket; not part of the timeline.
            self.user_frames += 1
            return
        if RELOAD.search(frame):
            # Too many missed for the socket: read the history over HTTP, as the page would.
            self.reloads += 1
            await self.reload_over_http()
        for match in ERROR.finditer(frame):
            text = re.sub(r"\s+", " ", match.group(1)).strip()
            if text:
                self.errors.append(text)
        for match in ACK.finditer(frame):
            for callback in self.on_ack:
                callback(hexid(match.group(1)), int(match.group(2)), now)
        matches = list(ARTICLE.finditer(frame))
        self._frames_since_open += 1
        if self._frames_since_open == 1 and matches:
            self._frame_kind = "resume"
            self.resume_answers.append([(int(m.group(1)), _version(m)) for m in matches])
        else:
            self._frame_kind = "batch" if len(matches) > 1 else "single"
        if len(matches) > 1 and self._frames_since_open > 1:
            self.batch_frames += 1
            self.batched_articles += len(matches)
        whole = (
            {int(m.group(1)): m.group(0) for m in WHOLE_ARTICLE.finditer(frame)}
            if self.keep_articles
            else {}
        )
        for match in matches:
            pk, seq, attrs = int(match.group(1)), int(match.group(2)), match.group(3)
            cid = CLIENT_ID.search(attrs)
            version = _version(match)
            self.take(pk, seq, hexid(cid.group(1)) if cid else None, now, version, whole.get(pk))

    def take(
        self,
        pk: int,
        seq: int,
        client_id: str | None,
        now: float,
        version: int | None = None,
        article: str | None = None,
    ) -> None:
        self.articles += 1
        version = seq if version is None else version
        if pk in self.held:
            held = self.versions.get(pk, seq)
            if version > held:  # a change: the page swaps the article in place
                self.changes += 1
                self.versions[pk] = version
                if article is not None:
                    self.articles_html[pk] = article
                self.highest = max(self.highest, version)
            elif version < held:
                self.stale += 1
                if len(self.stale_samples) < 5:
                    self.stale_samples.append((pk, held, version))
            else:
                self.dup_frames += 1
                self.repeated_versions.append((pk, version))
        else:
            if seq in self.by_seq:
                self.conflicts += 1
            if seq < self.highest_seq:
                self.reordered += 1
                if len(self.reorder_samples) < 5:
                    self.reorder_samples.append((seq, self.highest_seq, *self._highest_source))
            self.held[pk] = seq
            self.versions[pk] = version
            if article is not None:
                self.articles_html[pk] = article
            self.by_seq[seq] = pk
            self.first_seen[pk] = now
            self.arrival[pk] = (self._frame_kind, self.servers.pick(self.index))
            if client_id:
                self.client_ids[pk] = client_id
            if seq > self.highest_seq:
                self.highest_seq = seq
            if version > self.highest:
                self.highest = version
                self._highest_source = (self._frame_kind, client_id)
        for callback in self.on_article:
            callback(client_id, pk, seq, now)

    async def reload_over_http(self) -> None:
        """GET /api/rooms/<pk>/messages/?after=<seq> until there is nothing newer."""
        url = self.servers.pick(self.index).replace("ws://", "http://", 1)
        for _ in range(1000):
            page = await asyncio.wait_for(
                asyncio.to_thread(
                    self._get_json,
                    f"{url}/api/rooms/{self.room}/messages/?after={self.highest}&limit=100",
                ),
                15,
            )
            now = time.monotonic()
            for item in page["results"]:
                cid = hexid(item["client_id"]) if item.get("client_id") else None
                self.take(item["id"], item["seq"], cid, now, item.get("version"))
            if not page.get("newer"):
                return

    def _get_json(self, url: str) -> dict:
        request = urllib.request.Request(url, headers={"Cookie": f"sessionid={self.session}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    # --- sending ---------------------------------------------------------------------------
    async def send_json(self, data: dict) -> bool:
        """Send if connected; False if not (the caller resends on the next open)."""
        ws = self.ws
        if ws is None:
            return False
        try:
            await asyncio.wait_for(ws.send(json.dumps(data)), 5)
            return True
        except (ConnectionClosed, TimeoutError, OSError):
            return False

    def sequence(self) -> list[int]:
        """Message ids in seq order: what the page shows after de-duplicating by id."""
        return [pk for pk, _ in sorted(self.held.items(), key=lambda item: item[1])]


class Sender:
    """Sends ``count`` messages through ``client`` at ``interval`` seconds, at most ``window``
    unacknowledged at a time; resends the same client_id after ``ack_timeout`` or a reconnect."""

    def __init__(
        self,
        client: ChatClient,
        *,
        count: int,
        interval: float,
        window: int = 50,
        ack_timeout: float = 10.0,
        body_size: int = 0,
    ):
        self.client = client
        self.count = count
        self.interval = interval
        self.window = window
        self.ack_timeout = ack_timeout
        self.body_size = body_size
        self.outstanding: dict[str, dict] = {}
        self.first_sent: dict[str, float] = {}
        self.acked: dict[str, tuple[float, int, int]] = {}  # cid -> (t, message id, seq)
        self.ack_frames: dict[str, int] = {}
        self.resends = 0
        self.resent: set[str] = set()
        self.refused: list[str] = []
        self.sent = 0
        self.done = asyncio.Event()
        self._slot = asyncio.Event()
        client.on_open.append(self._resend_all)
        client.on_article.append(self._on_article)

    def _on_article(self, client_id, pk, seq, now) -> None:
        if client_id is None or client_id not in self.first_sent:
            return
        self.ack_frames[client_id] = self.ack_frames.get(client_id, 0) + 1
        if client_id in self.outstanding:
            del self.outstanding[client_id]
            self.acked[client_id] = (now, pk, seq)
            self._slot.set()
            if self.sent == self.count and not self.outstanding:
                self.done.set()

    def _resend_all(self) -> None:
        for client_id in list(self.outstanding):
            asyncio.get_running_loop().create_task(self._transmit(client_id, resend=True))

    async def _transmit(self, client_id: str, *, resend: bool = False) -> None:
        entry = self.outstanding.get(client_id)
        if entry is None:
            return
        entry["last"] = time.monotonic()
        if resend:
            self.resends += 1
            self.resent.add(client_id)
        frame = {"type": "message", "body": entry["body"], "client_id": entry["uuid"]}
        if "reply_to" in entry:
            frame["reply_to"] = entry["reply_to"]
        await self.client.send_json(frame)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for client_id, entry in list(self.outstanding.items()):
                if now - entry["last"] > self.ack_timeout and self.client.ws is not None:
                    await self._transmit(client_id, resend=True)

    async def run(self, deadline: float) -> None:
        """Send everything, then wait for the last acknowledgement (until ``deadline``; what is
        still unacknowledged then stays in ``outstanding`` and is reported by the case)."""
        watchdog = asyncio.create_task(self._watchdog())
        try:
            next_at = time.monotonic()
            for i in range(self.count):
                while len(self.outstanding) >= self.window:
                    self._slot.clear()
                    await asyncio.wait_for(self._slot.wait(), max(0.1, deadline - time.monotonic()))
                now = time.monotonic()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at = max(next_at + self.interval, time.monotonic() - 1)
                await self.send_one(f"{self.client.name} #{i}")
            if self.outstanding:
                await asyncio.wait_for(self.done.wait(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            pass
        finally:
            watchdog.cancel()

    async def send_one(
        self, text: str, client_id: str | None = None, reply_to: int | None = None
    ) -> str:
        client_id = client_id or str(uuid.uuid4())
        key = hexid(client_id)
        body = text + " " + "x" * (self.body_size - len(text)) if self.body_size else text
        self.outstanding[key] = {"uuid": client_id, "body": body, "last": time.monotonic()}
        if reply_to is not None:
            self.outstanding[key]["reply_to"] = reply_to
        self.first_sent[key] = time.monotonic()
        self.sent += 1
        await self._transmit(key)
        return key
