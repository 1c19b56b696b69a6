"""Per-socket delivery: each change of a room reaches a socket once, in seq order, although the
channel layer is at-most-once.

A ``SocketStream`` is one socket's state machine. It does no I/O of its own: it is given
``send`` (an ASGI message to the client), ``load`` (the messages changed in a seq range, from
the database), ``render`` (messages to one frame) and ``last_seq`` (the room's, from the
database), so it can be tested with fakes. What it sends is its ``wire``'s business, not its
own: ``HtmlWire`` (the page's fragments, the default) or ``JsonWire`` (``?format=json``: one
JSON frame per change, ``caught_up`` after a resume's catch-up, ``ack`` and ``reset`` frames).
Both go through the same states, the same queue and the same rules below.

States, explicit:

- ``HOLDING`` — connected, no cursor yet. Live events are held (at most HOLD_MAX) until the
  client's first ``resume`` or HOLD_SECONDS, so the catch-up goes first. A message the client
  sends meanwhile is acknowledged at once and remembered (``sent_early``), so neither its held
  live copy nor a later catch-up sends it again.
- ``LIVE`` — ``cursor`` is the highest change seq sent. A live event at or below it is a
  duplicate and dropped; one above ``cursor + 1`` means the layer lost something, and the gap
  ``(cursor, seq - 1]`` is read from the database first. A retried message (a client_id
  stored earlier) whose seq the stream has passed is acknowledged with a ``#message-ack``
  fragment naming it, not with its article again.
- ``CLOSED`` — a send failed (the client has gone) or the socket was closed or revoked:
  nothing more is queued or sent.

Everything sent goes through one ordered queue of jobs: live events, acknowledgements,
catch-ups. A job that does not need to wait — a live event in order, to a socket that keeps
up — runs to completion inside ``offer`` (``start_eagerly``); only the rest get a task, and a
stalled socket holds up no other.

A ``UserStream`` is the other half of a socket: its user's own stream — unread counts of every
room they are a member of, notifications, "the sidebar changed" — as small JSON text frames
(see its docstring). The room stream is HTML fragments, or a JSON socket's frames.
"""

import asyncio
import enum
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import lru_cache, partial
from typing import Any

from django.template.loader import render_to_string

from apps.core.eager import start_eagerly

from . import errors, realtime, search, unread

logger = logging.getLogger(__name__)

# Past this many missed changes a reconnecting page reloads its history instead.
RESUME_CAP = 500
# Live events are held for a socket that has not sent its first "resume" yet, at most this
# many and this long; then delivery starts from the room's seq at connect time.
HOLD_MAX = 1000
HOLD_SECONDS = 1.0
# Work queued for a socket that is not keeping up; past it live events are dropped here and
# read back from the database when the socket drains (the gap check) or on the hub's tick.
BACKLOG_MAX = 1000

Send = Callable[[dict], Awaitable[Any]]
# (after, upto | None, limit) -> the messages whose latest change is in (after, upto], in
# change order, at most ``limit``.
Load = Callable[[int, int | None, int], Awaitable[Sequence[Any]]]
Render = Callable[[Sequence[Any]], Awaitable[str]]
LastSeq = Callable[[], Awaitable[int]]
Job = Callable[[], Awaitable[None]]


class State(enum.Enum):
    HOLDING = "holding"
    LIVE = "live"
    CLOSED = "closed"


class SendFailed(Exception):
    """Writing to the socket failed: the client has gone."""


def render_ack(client_id: str, message_id: int) -> str:
    """The ``#message-ack`` fragment: the acknowledgement of a retried message the socket has
    already been sent (at this version or a later one), by name instead of as its article,
    which would be the state read before the retry and possibly older than what the page
    shows. The page's article carries the same ``data-client-id``, so its pending copy
    settles."""
    context = {"client_id": client_id, "message_id": message_id}
    return render_to_string("chat/room_detail.html#message-ack", context)


class HtmlWire:
    """What a SocketStream sends to a page: HTML fragments. A live event's ASGI message is the
    hub's ``frame`` (built once for every recipient); a catch-up is one fragment for the
    batch; a passed retry is ``render_ack``; too far behind is ``render_reload``."""

    __slots__ = ("_render",)

    def __init__(self, render: "Render"):
        self._render = render

    def live(self, event: dict) -> dict | None:
        return event.get("frame") or realtime.websocket_frame(event["html"])

    async def changes(self, messages: Sequence[Any], after: int) -> list[str]:
        html = await self._render(messages)
        return [html] if html else []

    def ack(self, client_id: str, message_id: int) -> str:
        return render_ack(client_id, message_id)

    def reset(self, seq: int) -> str:
        return realtime.render_reload()

    def caught_up(self, seq: int) -> str | None:
        return None


class JsonWire:
    """What a SocketStream sends to a program (``?format=json``): JSON text frames (README, "Bots
    on the websocket"). A live event's ASGI message is built once per event per process, by
    the first JSON socket the hub offers it to (``json_frame``, kept on the event); a catch-up
    is one frame per change, then ``caught_up``; a passed retry is an ``ack`` frame; too far
    behind is ``reset``. ``render`` builds catch-up frames: (messages, after) -> texts."""

    __slots__ = ("room_id", "_render")

    def __init__(self, room_id: int, render: Callable[[Sequence[Any], int], Awaitable[list[str]]]):
        self.room_id = room_id
        self._render = render

    def live(self, event: dict) -> dict | None:
        frame = event.get("json_frame")
        if frame is None:
            text = realtime.json_text(event)
            if text is None:
                return None  # no message object in it: the stream reads it from the database
            frame = realtime.websocket_frame(text)
            if "frame" in event:  # a hub's copy, shared by its sockets (not a local ack's)
                event["json_frame"] = frame
        return frame

    async def changes(self, messages: Sequence[Any], after: int) -> list[str]:
        return await self._render(messages, after) if messages else []

    def ack(self, client_id: str, message_id: int) -> str:
        payload = {"type": "ack", "room": self.room_id, "client_id": client_id, "id": message_id}
        return realtime.dumps(payload)

    def reset(self, seq: int) -> str:
        return realtime.dumps({"type": "reset", "room": self.room_id, "seq": seq})

    def caught_up(self, seq: int) -> str | None:
        return realtime.dumps({"type": "caught_up", "room": self.room_id, "seq": seq})


def json_error(
    text: str, *, code: str = "invalid", fields: dict | None = None, client_id=None, message_id=None
) -> str:
    """``{"type": "error", "error": {"code", "message", "fields"}, "client_id"?, "id"?}``: for
    the sender's socket only (errors.error_object's shape, as the API's error bodies)."""
    payload = {"type": "error", "error": errors.error_object(code, text, fields)}
    if isinstance(client_id, str):
        payload["client_id"] = client_id
    if message_id is not None:
        payload["id"] = message_id
    return realtime.dumps(payload)


def change_seq(message) -> int:
    """The seq of a message's latest change (its version; a message never changed: its seq)."""
    return getattr(message, "version", message.seq)


class _CarriedOn:
    """Work a stream runs inside the caller's call (``start_eagerly``) until its first real
    wait; from there one task at a time carries it on. Subclasses set ``_busy``/``_task`` and
    define ``_send_failed`` and ``_more`` (start what was queued behind the task)."""

    __slots__ = ()

    def _carried_on(self, task: asyncio.Task | None) -> None:
        """What ran inside the call finished (None), or a task carries it on."""
        if task is None:
            self._busy = False
        else:
            self._task = task
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        if self._task is task:
            self._task = None
        self._busy = False
        if task.cancelled():  # close() did that
            return
        if task.exception() is not None:  # a send on the quick path
            self._send_failed(task.exception())
        else:
            self._more()


class SocketStream(_CarriedOn):
    __slots__ = (
        "_send_asgi",
        "_load",
        "_wire",
        "_last_seq",
        "seq_at_connect",
        "label",
        "state",
        "cursor",
        "_held",
        "_sent_early",
        "_hold_timer",
        "_jobs",
        "_busy",
        "_task",
    )

    def __init__(
        self,
        *,
        send: Send,
        load: Load,
        render: Render | None = None,
        last_seq: LastSeq,
        seq_at_connect: int,
        label: object = "",
        wire: "HtmlWire | JsonWire | None" = None,
    ):
        self._send_asgi = send
        self._load = load
        # What it sends (HTML fragments, or JSON frames): the delivery rules are the same.
        self._wire = wire if wire is not None else HtmlWire(render)
        self._last_seq = last_seq
        # The room's last seq when the socket subscribed: where a socket that never resumes
        # starts, and the least a client can have seen.
        self.seq_at_connect = seq_at_connect
        self.label = label  # for the logs
        self.state = State.HOLDING
        self.cursor: int | None = None  # set when LIVE: the highest change seq sent
        self._held: list[dict] = []
        # Seqs acknowledged before the stream started (a client that sends before its first
        # "resume"); None, not an empty set, for the usual socket.
        self._sent_early: set[int] | None = None
        self._hold_timer: asyncio.TimerHandle | None = None
        self._jobs: list[Job] = []  # short: a list costs less per socket than a deque
        # A job or a send is under way: inside the current call, or in ``_task``.
        self._busy = False
        self._task: asyncio.Task | None = None

    # --- what the socket's owner calls ------------------------------------------------------

    def start_holding(self) -> None:
        """The socket is open: start the hold timer (a client that never resumes starts
        receiving after HOLD_SECONDS)."""
        if self.state is State.HOLDING and self._hold_timer is None:
            loop = asyncio.get_running_loop()
            self._hold_timer = loop.call_later(HOLD_SECONDS, self.hold_expired)

    def hold_expired(self) -> None:
        """No resume came in time: start from the room's seq at connect."""
        self._hold_timer = None
        if self.state is State.HOLDING:
            self._submit(partial(self._start, self.seq_at_connect, catch_up=False))

    def resume(self, after: int) -> None:
        """The client holds every change up to ``after``: send what it lacks, then go on."""
        if self.state is not State.CLOSED:
            self._submit(partial(self._start, after, catch_up=True))

    def acknowledge(self, event: dict, created: bool, client_id: str | None = None) -> None:
        """The sender's own change, acknowledged on its socket without waiting for the channel
        layer (which may drop it), in order with everything else. A retry of a message stored
        earlier (``created`` false, ``client_id`` the message's) is acknowledged again even if
        the socket had it: with its article while the stream has not passed the seq it was
        read at, else with ``render_ack`` (never an older version than the socket sent)."""
        if self.state is not State.CLOSED:
            self._submit(partial(self._ack, event, created, client_id))

    def offer(self, event: dict) -> None:
        """A live event from the hub (synchronous; called once per socket per event). Carries
        ``seq`` (the change's), ``html`` and ``frame`` (its ASGI message, built once)."""
        if self.state is State.HOLDING:
            if len(self._held) < HOLD_MAX:
                self._held.append(event)
            return  # past HOLD_MAX the resume query finds it in the database
        if self.state is State.CLOSED:
            return
        if (
            not self._busy
            and not self._jobs
            and not self._sent_early  # (else it may be one acknowledged early: the queue checks)
            and event["seq"] == self.cursor + 1
        ):
            # The common case — in order, nothing queued — without the job queue: one send,
            # with the ASGI message the hub built once for every recipient.
            frame = self._wire.live(event)
            if frame is None:  # (the queue reads it from the database)
                self._submit(partial(self._deliver, event))
                return
            self.cursor = event["seq"]
            self._busy = True
            try:
                sending = start_eagerly(self._send_asgi(frame))
            except Exception as exc:
                self._busy = False
                self._send_failed(exc)
                return
            self._carried_on(sending)
        elif len(self._jobs) < BACKLOG_MAX:
            self._submit(partial(self._deliver, event))

    def catch_up_to(self, seq: int) -> None:
        """The room's last seq, read from the database: send what this socket lacks up to it
        (unless work is queued: its gap check will)."""
        if self.state is State.LIVE and seq > self.cursor and not self._jobs:
            self._submit(partial(self._catch_up, seq))

    async def idle(self) -> None:
        """Return once nothing is under way: every job queued so far has run (or the stream
        closed). For tests, and for anything that must follow what is already queued."""
        while self._busy and self.state is not State.CLOSED and self._task is not None:
            # Its done callback, added first, runs before this wait returns: a job queued
            # behind it has a task of its own by then, and the loop waits for that one.
            await asyncio.wait({self._task})

    def close(self) -> None:
        """Deliver nothing more: drop what is held and queued, cancel a send under way."""
        task = self._task
        self._close()
        if task is not None:
            task.cancel()

    # --- the ordered queue --------------------------------------------------------------------

    def _submit(self, job: Job) -> None:
        self._jobs.append(job)
        if not self._busy:
            self._drain()

    def _drain(self) -> None:
        """Run the queued jobs now, up to the first real wait; a task carries on from there."""
        self._busy = True
        self._carried_on(start_eagerly(self._run()))

    def _more(self) -> None:
        if self._jobs:  # queued behind the task that ended
            self._drain()

    async def _run(self) -> None:
        while self._jobs:
            job = self._jobs.pop(0)
            try:
                await job()
            except SendFailed as exc:
                self._send_failed(exc.__cause__)
            except Exception:
                # The database is unreachable: what this socket lacks is sent on the next live
                # event (the gap check) or the hub's next tick.
                logger.warning("delivery to %s failed", self.label, exc_info=True)

    def _send_failed(self, exc: BaseException | None) -> None:
        # The client is gone (uvicorn: ClientDisconnected); the consumer's disconnect follows.
        logger.info("send to a socket of %s failed: %r", self.label, exc)
        self._close()

    def _close(self) -> None:
        self.state = State.CLOSED
        self._jobs, self._held = [], []
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    # --- the jobs -------------------------------------------------------------------------------

    async def _start(self, after: int, *, catch_up: bool) -> None:
        if self.state is State.CLOSED or (not catch_up and self.state is State.LIVE):
            return  # closed meanwhile, or a resume came first
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self.state = State.LIVE
        self.cursor = after
        if catch_up:
            await self._send_changes(upto=None)
        held, self._held = self._held, []
        for event in sorted(held, key=lambda e: e["seq"]):
            await self._deliver(event)
        self._forget_early()
        if catch_up:
            done = self._wire.caught_up(self.cursor)  # (JSON: "caught_up")
            if done is not None:
                await self._send(done)

    async def _ack(self, event: dict, created: bool, client_id: str | None) -> None:
        seq = event["seq"]
        if self.state is State.HOLDING:
            # Before the stream starts: acknowledge now, and remember it, so that neither the
            # held live copy nor a later catch-up sends it a second time.
            if self._sent_early is None:
                self._sent_early = set()
            self._sent_early.add(seq)
            await self._send_frame(self._wire.live(event))
        elif seq > self.cursor:
            await self._deliver(event)  # in order: a gap before it is filled first
        elif not created:
            # A retry the stream has passed: this socket was sent that version of the message
            # or a later one (or a bounded catch-up passed it because it changed again: that
            # later version is still to come). Its article here would be the state read
            # before, possibly older than what went out since: a version must not go
            # backwards on one socket.
            await self._send(self._wire.ack(client_id or "", event["id"]))

    async def _catch_up(self, seq: int) -> None:
        if seq > self.cursor:
            await self._send_changes(upto=seq)

    async def _deliver(self, event: dict) -> None:
        seq = event["seq"]
        if seq <= self.cursor:
            return  # already sent: a catch-up overlapped the live stream
        frame = self._wire.live(event)
        if frame is None:
            await self._send_changes(upto=seq)  # nothing to send it with: from the database
            return
        if seq > self.cursor + 1:
            await self._send_changes(upto=seq - 1)  # the channel layer dropped something
        if seq > self.cursor:
            self.cursor = seq
            if self._sent_early and seq in self._sent_early:
                self._forget_early()  # acknowledged before the stream started
                return
            await self._send_frame(frame)

    async def _send_changes(self, *, upto: int | None) -> None:
        """Send, in one frame, the current state of every message changed after ``cursor``
        (up to ``upto``), each once, in change order."""
        changes = await self._load(self.cursor, upto, RESUME_CAP + 1)
        if len(changes) > RESUME_CAP:
            # Too far behind to replay over the socket: the page reloads its history instead.
            self.cursor = await self._last_seq()
            await self._send(self._wire.reset(self.cursor))
            return
        if upto is not None:
            # Everything up to ``upto`` is accounted for: a message changed in that range and
            # again later is not in it (its version is higher now) and comes later.
            newest = max(self.cursor, upto)
        elif changes:
            newest = change_seq(changes[-1])
        else:
            return
        if self._sent_early:  # acknowledged before the stream started: not again
            changes = [m for m in changes if change_seq(m) not in self._sent_early]
        # HTML: one fragment for the batch; JSON: one frame per change.
        texts = await self._wire.changes(changes, self.cursor) if changes else []
        self.cursor = newest
        self._forget_early()
        for text in texts:
            await self._send(text)

    async def _send(self, text: str) -> None:
        await self._send_frame(realtime.websocket_frame(text))

    async def _send_frame(self, frame: dict) -> None:
        """An ASGI message: a change event's (the wire's ``live``), or a text's."""
        if self.state is State.CLOSED:  # closed while this job ran
            return
        try:
            await self._send_asgi(frame)
        except Exception as exc:
            raise SendFailed from exc

    def _forget_early(self) -> None:
        """Early acknowledgements at or below the cursor can come no more: forget them (while
        any is remembered, live changes take the queue, not the quick path)."""
        if self._sent_early:
            self._sent_early = {seq for seq in self._sent_early if seq > self.cursor} or None


# --- The user stream ----------------------------------------------------------------------------


def json_frame(payload: dict) -> dict:
    """The ASGI message that sends ``payload`` as a JSON text frame."""
    return realtime.websocket_frame(json.dumps(payload, separators=(",", ":")))


# Frames that are the same for everyone: built once, shared (servers never change them).
SIDEBAR_FRAME = json_frame({"type": "sidebar"})
DIRECTORY_FRAME = json_frame({"type": "directory"})


def receipts_frame(room_id: int, receipts: list) -> dict:
    """``{"type": "receipts", "room", "reads": [[user, seq], ...]}``: every read pointer of
    the room's receipt senders (receipts.py), the same for every viewer."""
    return json_frame({"type": "receipts", "room": room_id, "reads": receipts})


def room_frame(event: dict) -> dict:
    """``{"type": "room", "room", "name", "topic"}`` from a ``room.updated`` event."""
    return json_frame(
        {
            "type": "room",
            "room": event.get("room"),
            "name": event.get("name", ""),
            "topic": event.get("topic", ""),
        }
    )


@lru_cache(maxsize=4096)
def notify_frame(fact: unread.Fact, kind: str) -> dict:
    """``{"type": "notify", "room", "message", "title", "body", "url"}``: built once per
    event (kept on the fact) for every socket it notifies. In a direct conversation the
    title is the author; elsewhere the room, and the body starts with the author."""
    frame = fact.notify_frame
    if frame is None:
        if kind == unread.DM or not fact.room_name:
            title, body = fact.author_name, fact.text
        else:
            title, body = fact.room_name, f"{fact.author_name}: {fact.text}"
        frame = fact.notify_frame = json_frame(
            {
                "type": "notify",
                "room": fact.room,
                "message": fact.message,
                "title": title,
                "body": body,
                # The room opened at the message (?around=), as a search result opens it.
                "url": search.url_at(fact.room, fact.msg_seq, fact.message),
            }
        )
    return frame


def _unread_text(counts: unread.RoomCounts) -> str:
    unread_n, mentions, muted, pointer = counts.shown()
    return (
        f'{{"type":"unread","room":{counts.room_id},"unread":{unread_n},'
        f'"mentions":{mentions},"muted":{"true" if muted else "false"},"pointer":{pointer}}}'
    )


# A ``load``: the user's states ({room id: UnreadState.as_dict()}) of these rooms (None: of
# all their memberships — and then None instead if the room the socket views is no longer
# visible to them).
LoadStates = Callable[[Iterable[int] | None], Awaitable[dict[int, dict] | None]]

USER_BACKLOG_MAX = 200  # frames queued for a socket that does not keep up; past it: a re-sync
SYNC_RETRY_SECONDS = (0.5, 5.0)  # first and longest wait before a failed re-read is retried
_ALL = object()  # "every room" (what a full read is reading)
_SYNC = object()  # a queued ``sync`` frame (built when sent, from the counts as they are then)


class UserStream(_CarriedOn):
    """One socket's user stream: for each room its user is a member of, an
    ``unread.RoomCounts`` kept live by the hub (``room_change``: no I/O, a few comparisons),
    and the JSON frames that tell the page (in order, through one queue):

    - ``{"type": "sync", "rooms": {"<id>": {"unread", "mentions", "notify", "muted",
      "pointer", "kind"}}}`` — every room, read from the database (``start``; after
      ``rooms_changed``, followed by ``sidebar``);
    - ``{"type": "unread", "room", "unread", "mentions", "muted", "pointer"}`` — a room's
      numbers changed (a message, a delete, an edit's mentions, a read on any device);
    - ``{"type": "notify", ...}`` (``notify_frame``), ``{"type": "sidebar"}`` (the room list
      changed: refetch it), ``{"type": "room", ...}`` (``room_frame``), ``{"type":
      "directory"}``.

    Database reads (``load``) run one at a time in a task: a full one (``start``,
    ``rooms_changed``) also makes the hub watch exactly the rooms read
    (``hub.watch``); a room whose subscription is younger than the read is read again (an
    event between the two would be missed). Counts are exact by snapshot + replay
    (unread.py), with two more rules for snapshots that cross: a ``read`` (someone's pointer
    moved: its state read elsewhere) that arrives while this stream's own read of that room
    is under way may be newer or older than it, so the room is read again; and a snapshot
    the hub's recent facts cannot complete (``evicted``) is read again too.

    Unread frames are built when sent, from the counts as they are then: a room's frame
    queued twice goes once, and a ``sync`` queued replaces the unread frames before it."""

    __slots__ = (
        "user_id",
        "label",
        "counts",
        "live_room",
        "closed",
        "synced",
        "_send_asgi",
        "_load",
        "_hub",
        "_forbidden",
        "_queue",
        "_dirty",
        "_busy",
        "_task",
        "_want_full",
        "_want_sidebar",
        "_want_rooms",
        "_reading",
        "_crossed",
        "_syncing",
    )

    def __init__(
        self,
        *,
        user_id,
        send: Send,
        load: LoadStates,
        hub,
        forbidden: Callable[[], None] | None = None,
        label: object = "",
    ):
        self.user_id = user_id
        self.label = label
        self.counts: dict[int, unread.RoomCounts] = {}
        # The room this socket's page reads live (focused, at the bottom: the ``active``
        # frame), or None: its new messages are read as they come (unread.READ).
        self.live_room: int | None = None
        self.closed = False
        self.synced = False  # a full read has been applied (its sync frame queued)
        self._send_asgi = send
        self._load = load
        self._hub = hub
        self._forbidden = forbidden  # the room the socket views is no longer visible
        # Queued frames: an ASGI message, a room id (its unread frame) or _SYNC.
        self._queue: deque = deque()
        self._dirty: set[int] = set()  # rooms whose unread frame is queued
        self._busy = False
        self._task: asyncio.Task | None = None
        self._want_full = False
        self._want_sidebar = False
        self._want_rooms: set[int] = set()
        # What the read under way reads (_ALL or a set of rooms), and the rooms a ``read``
        # event reached meanwhile: it may be newer or older than the read, which is redone.
        self._reading: object = None
        self._crossed: set[int] = set()
        self._syncing: asyncio.Task | None = None

    # --- what the socket's owner calls ------------------------------------------------------

    def start(self) -> None:
        """Read every room from the database, watch them, send ``sync``."""
        self._want_full = True
        self._kick()

    def close(self) -> None:
        """Send nothing more; stop reading."""
        self.closed = True
        self._queue.clear()
        self._dirty.clear()
        for task in (self._task, self._syncing):
            if task is not None:
                task.cancel()

    async def settled(self, timeout: float = 2.0) -> bool:
        """Wait (at most ``timeout``) for a read of the counts under way; True when the
        counts are those of a completed read of every membership and none is under way."""
        syncing = self._syncing
        if syncing is not None:
            await asyncio.wait({syncing}, timeout=timeout)
        return self.synced and self._syncing is None and not self.closed

    def answer(self, room_id: int) -> None:
        """Send the room's unread frame as the counts are (an answer to the page)."""
        if room_id in self.counts:
            self._post_unread(room_id)

    async def idle(self) -> None:
        """Return once no read is under way and nothing is queued (tests)."""
        while not self.closed and (self._syncing is not None or self._busy):
            waiting = {t for t in (self._syncing, self._task) if t is not None}
            if not waiting:
                await asyncio.sleep(0)
                continue
            await asyncio.wait(waiting)

    # --- what the hub calls -------------------------------------------------------------------

    def room_change(self, fact: unread.Fact) -> None:
        """A change of a watched room: count it; a frame when a number changed, and the
        notification when it notifies this user."""
        counts = self.counts.get(fact.room)
        if counts is None:
            return  # being read: the replay over the snapshot counts it
        result = counts.apply(self.user_id, fact, fact.room == self.live_room)
        if not result:
            return
        if result & unread.READ:
            self._hub.read_later(fact.room, self.user_id, fact.msg_seq)
            return
        if result & unread.CHANGED:
            self._post_unread(fact.room)
        if result & unread.NOTIFY:
            self._post(notify_frame(fact, counts.kind))
        if counts.stale:
            counts.stale = False
            self.resync((fact.room,))

    def read(self, room_id: int, state: dict, answer: bool = False) -> None:
        """The user's read state in the room, read after their pointer moved (here or on
        another device): take it if it is not older than the counts. ``answer``: send the
        room's unread frame even if nothing it shows changed."""
        reading = self._reading
        if reading is _ALL or (reading is not None and room_id in reading):
            self._crossed.add(room_id)
        if self._take(room_id, state) or (answer and room_id in self.counts):
            self._post_unread(room_id)

    def read_to(self, room_id: int, pointer: int) -> None:
        """The user's pointer in the room moved forward to ``pointer`` by live reading (on
        this socket or another): apply it, without the database when the counts can."""
        counts = self.counts.get(room_id)
        if counts is None:
            return
        reading = self._reading
        if reading is _ALL or (reading is not None and room_id in reading):
            self._crossed.add(room_id)
        if counts.read_to(pointer):
            if counts.stale:
                counts.stale = False
                self.resync((room_id,))
            else:
                self._post_unread(room_id)

    def rooms_changed(self) -> None:
        """The user's memberships changed: read them all again, then ``sync`` and
        ``sidebar``."""
        self._want_full = True
        self._want_sidebar = True
        self._kick()

    def resync(self, room_ids) -> None:
        """Read these rooms' counts again (a lost change, a count at the cap)."""
        self._want_rooms.update(room_ids)
        self._kick()

    def lost_room(self, room_id: int) -> None:
        """The user may no longer see the room: forget it, stop watching it, ``sidebar``."""
        self.counts.pop(room_id, None)
        self._hub.unwatch(self, room_id)
        self._post(SIDEBAR_FRAME)

    def post(self, frame: dict) -> None:
        """A frame built once for every recipient (``room``, ``directory``)."""
        self._post(frame)

    def behind(self, room_id: int, last_seq: int) -> bool:
        counts = self.counts.get(room_id)
        if counts is None or self._syncing is not None:
            return False  # not counted yet, or being read
        return counts.behind(last_seq)

    def check(self, memberships: dict[int, tuple]) -> None:
        """The user's memberships as the database has them ({room id: (notify, pointer)}),
        for the periodic re-check: other rooms or settings → read everything again; other
        pointers → read those rooms again (not the room read live, where the counts' pointer
        is ahead of the database's until the hub's next batch)."""
        if not self.synced or self._syncing is not None:
            return  # a read is under way or to come: it reads them
        if memberships.keys() != self.counts.keys() or any(
            self.counts[room_id].notify != notify for room_id, (notify, _) in memberships.items()
        ):
            self.rooms_changed()
            return
        live = self.live_room
        moved = [
            r
            for r, (_, pointer) in memberships.items()
            if self.counts[r].pointer != pointer
            # (ahead in the room read live: the hub's next batch writes it)
            and not (r == live and self.counts[r].pointer > pointer)
        ]
        if moved:
            self.resync(moved)

    # --- reading from the database ------------------------------------------------------------

    def _kick(self) -> None:
        if self._syncing is None and not self.closed:
            self._syncing = asyncio.ensure_future(self._syncs())

    async def _syncs(self) -> None:
        delay = SYNC_RETRY_SECONDS[0]
        try:
            while not self.closed and (self._want_full or self._want_rooms):
                full, sidebar, rooms = self._want_full, self._want_sidebar, self._want_rooms
                self._want_rooms = set()
                self._want_full = self._want_sidebar = False
                try:
                    if full:
                        await self._read_all(sidebar)
                    else:
                        await self._read_rooms(rooms)
                    delay = SYNC_RETRY_SECONDS[0]
                except Exception:
                    # The database or the channel layer is away: again in a moment.
                    logger.warning("user stream read for %s failed", self.label, exc_info=True)
                    if full:
                        self._want_full = True
                        self._want_sidebar |= sidebar
                    self._want_rooms |= rooms
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, SYNC_RETRY_SECONDS[1])
        finally:
            self._reading = None
            self._syncing = None

    async def _read_all(self, sidebar: bool) -> None:
        loop = asyncio.get_running_loop()
        # Until the states are applied, a ``read`` event of any room may cross them.
        self._reading, self._crossed = _ALL, set()
        try:
            started = loop.time()
            states = await self._load(None)
            if states is None:
                if self._forbidden is not None:
                    self._forbidden()
                return
            await self._hub.watch(self, states.keys())
            # A room whose subscription is younger than the read: an event between the two
            # was missed. Read those again, now that they are watched.
            again = sorted(r for r in states if not self._hub.subscribed_before(r, started))
            if again and not self.closed:
                more = await self._load(again)
                for room_id in again:
                    if room_id in more:
                        states[room_id] = more[room_id]
                    else:  # left meanwhile (the user.rooms that says so follows)
                        del states[room_id]
                        self._hub.unwatch(self, room_id)
            if self.closed:
                return
            for room_id in [r for r in self.counts if r not in states]:
                del self.counts[room_id]
            for room_id, state in states.items():
                self._take(room_id, state, create=True)
            crossed = self._crossed & states.keys()
        finally:
            self._reading = None
        self.synced = True
        self._post(_SYNC)
        if sidebar:
            self._post(SIDEBAR_FRAME)
        if crossed:
            self.resync(crossed)  # newer or older than this read: read them once more

    async def _read_rooms(self, rooms: set[int]) -> None:
        rooms = sorted(r for r in rooms if r in self.counts)
        if not rooms:
            return
        self._reading, self._crossed = set(rooms), set()
        try:
            states = await self._load(rooms)
            crossed = self._crossed & states.keys()
        finally:
            self._reading = None
        for room_id in rooms:
            state = states.get(room_id)
            if state is None:  # not a member any more, and the event saying so was lost
                self.rooms_changed()
            elif self._take(room_id, state):
                self._post_unread(room_id)
        if crossed:
            self.resync(crossed)

    def _take(self, room_id: int, state: dict, create: bool = False) -> bool:
        """Apply a snapshot (with the replay of the hub's recent facts above its
        ``through``); True when what a frame shows changed."""
        counts = self.counts.get(room_id)
        if counts is None:
            if not create:
                return False  # not watched (yet): the read under way brings it
            counts = self.counts[room_id] = unread.RoomCounts(room_id)
        facts, evicted = self._hub.recent(room_id)
        before = counts.shown()
        if not counts.snapshot(state, facts, self.user_id):
            return False  # older than what the counts reflect
        if evicted > state["through"] or counts.stale:
            counts.stale = False
            self.resync((room_id,))  # the replay may lack some: read it again
        return counts.shown() != before

    # --- the ordered frames -----------------------------------------------------------------

    def _post_unread(self, room_id: int) -> None:
        if room_id not in self._dirty:
            self._post(room_id)

    def _frame(self, entry) -> dict | None:
        if entry is _SYNC:
            rooms = {str(r): counts.as_sync() for r, counts in self.counts.items()}
            return json_frame({"type": "sync", "rooms": rooms})
        if isinstance(entry, int):
            counts = self.counts.get(entry)
            if counts is None:
                return None  # forgotten meanwhile (the sidebar frame says so)
            return realtime.websocket_frame(_unread_text(counts))
        return entry

    def _post(self, entry) -> None:
        if self.closed:
            return
        if not self._busy and not self._queue:
            # The common case: nothing queued, send now (no task unless the send waits).
            frame = self._frame(entry)
            if frame is None:
                return
            self._busy = True
            try:
                sending = start_eagerly(self._send_asgi(frame))
            except Exception as exc:
                self._busy = False
                self._send_failed(exc)
                return
            self._carried_on(sending)
            return
        queue = self._queue
        if entry is _SYNC:  # it shows every room: the unread frames before it go
            self._queue = queue = deque(e for e in queue if e is not _SYNC and type(e) is not int)
            self._dirty.clear()
        elif isinstance(entry, int):
            self._dirty.add(entry)
        if len(queue) >= USER_BACKLOG_MAX:
            # Far behind: what it lacks is the current state, in two frames.
            self._queue = deque([_SYNC, SIDEBAR_FRAME])
            self._dirty.clear()
            return
        queue.append(entry)

    def _more(self) -> None:
        if self._queue and not self.closed:
            self._busy = True
            try:
                draining = start_eagerly(self._drain())
            except Exception as exc:
                self._busy = False
                self._send_failed(exc)
                return
            self._carried_on(draining)

    async def _drain(self) -> None:
        while self._queue and not self.closed:
            entry = self._queue.popleft()
            if type(entry) is int:
                self._dirty.discard(entry)
            frame = self._frame(entry)
            if frame is not None:
                await self._send_asgi(frame)

    def _send_failed(self, exc: BaseException | None) -> None:
        logger.info("send to the user stream of %s failed: %r", self.label, exc)
        self.closed = True
        self._queue.clear()
        self._dirty.clear()
