"""Per-socket delivery: each change of a room reaches a socket once, in seq order, although the
channel layer is at-most-once.

A ``SocketStream`` is one socket's state machine. It does no I/O of its own: it is given
``send`` (an ASGI message to the client), ``load`` (the messages changed in a seq range, from
the database), ``render`` (messages to one frame) and ``last_seq`` (the room's, from the
database), so it can be tested with fakes.

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
"""

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from django.template.loader import render_to_string

from apps.core.eager import start_eagerly

from . import realtime

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


def change_seq(message) -> int:
    """The seq of a message's latest change (its version; a message never changed: its seq)."""
    return getattr(message, "version", message.seq)


class SocketStream:
    __slots__ = (
        "_send_asgi",
        "_load",
        "_render",
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
        render: Render,
        last_seq: LastSeq,
        seq_at_connect: int,
        label: object = "",
    ):
        self._send_asgi = send
        self._load = load
        self._render = render
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
            self.cursor = event["seq"]
            frame = event.get("frame") or realtime.websocket_frame(event["html"])
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
        elif self._jobs:  # queued behind it
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

    async def _ack(self, event: dict, created: bool, client_id: str | None) -> None:
        seq = event["seq"]
        if self.state is State.HOLDING:
            # Before the stream starts: acknowledge now, and remember it, so that neither the
            # held live copy nor a later catch-up sends it a second time.
            if self._sent_early is None:
                self._sent_early = set()
            self._sent_early.add(seq)
            await self._send(event["html"])
        elif seq > self.cursor:
            await self._deliver(event)  # in order: a gap before it is filled first
        elif not created:
            # A retry the stream has passed: this socket was sent that version of the message
            # or a later one (or a bounded catch-up passed it because it changed again: that
            # later version is still to come). Its article here would be the state read
            # before, possibly older than what went out since: a version must not go
            # backwards on one socket.
            await self._send(render_ack(client_id or "", event["id"]))

    async def _catch_up(self, seq: int) -> None:
        if seq > self.cursor:
            await self._send_changes(upto=seq)

    async def _deliver(self, event: dict) -> None:
        seq = event["seq"]
        if seq <= self.cursor:
            return  # already sent: a catch-up overlapped the live stream
        if seq > self.cursor + 1:
            await self._send_changes(upto=seq - 1)  # the channel layer dropped something
        if seq > self.cursor:
            self.cursor = seq
            if self._sent_early and seq in self._sent_early:
                self._forget_early()  # acknowledged before the stream started
                return
            await self._send(event["html"])

    async def _send_changes(self, *, upto: int | None) -> None:
        """Send, in one frame, the current state of every message changed after ``cursor``
        (up to ``upto``), each once, in change order."""
        changes = await self._load(self.cursor, upto, RESUME_CAP + 1)
        if len(changes) > RESUME_CAP:
            # Too far behind to replay over the socket: the page reloads its history instead.
            self.cursor = await self._last_seq()
            await self._send(realtime.render_reload())
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
        html = await self._render(changes) if changes else ""
        self.cursor = newest
        self._forget_early()
        if html:
            await self._send(html)

    def _forget_early(self) -> None:
        """Early acknowledgements at or below the cursor can come no more: forget them (while
        any is remembered, live changes take the queue, not the quick path)."""
        if self._sent_early:
            self._sent_early = {seq for seq in self._sent_early if seq > self.cursor} or None

    async def _send(self, html: str) -> None:
        if self.state is State.CLOSED:  # closed while this job ran
            return
        try:
            await self._send_asgi(realtime.websocket_frame(html))
        except Exception as exc:
            raise SendFailed from exc
