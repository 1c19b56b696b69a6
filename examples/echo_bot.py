#!/usr/bin/env python3
"""A Parley bot on the websocket: answers every new message of one room with "echo: <text>".

    PARLEY_TOKEN=<a personal access token> python examples/echo_bot.py \\
        --url http://127.0.0.1:8000 --room 1

Needs only the standard library and the ``websockets`` package (``pip install websockets``).
Options may also come from the environment: PARLEY_URL, PARLEY_TOKEN, PARLEY_ROOM, and
PARLEY_STATE (a file where the bot keeps the last seq it saw, so that a restarted bot carries on
where it stopped instead of starting from the room's end).

How it works (README, "Bots on the websocket"):

- it asks the API who it is (``GET /api/profiles/me/``) and, on its very first start, where the
  room is now (``GET /api/rooms/<id>/``: ``last_seq``), so it never answers old history;
- it connects to ``/ws/chat/room/<id>/?format=json`` with ``Authorization: Bearer <token>`` and
  sends ``{"type": "resume", "after_seq": <the last seq it saw>}``: the server sends every change
  after it, once each, then ``caught_up``, then live changes;
- each ``message`` frame by someone else (not a bot) is answered with a ``client_id`` derived
  from the original message's id: the server stores one message per (author, client_id), so a
  message seen twice (a replay, a resend after a reconnect) is never answered twice;
- answers not yet acknowledged when the connection drops are sent again after the reconnect
  (the same client_id: harmless if the server had them);
- on a disconnect it reconnects with exponential backoff and full jitter (capped), and resumes
  from the last seq it saw; on 4401 (token revoked), 4403/4404 (no access to the room) or 4400
  it stops: retrying would not help.
"""

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

logger = logging.getLogger("echo_bot")

# The answers' client ids: uuid5 of the original message's id in this namespace.
ECHO_NAMESPACE = uuid.UUID("6f1c7a52-5d0e-4f7e-9a8e-3c1d2b4a5e60")
FATAL_CLOSE_CODES = {4400: "bad request", 4401: "token refused", 4403: "forbidden", 4404: "no room"}


class Fatal(Exception):
    """Stop: reconnecting would not help (the server said no)."""


def echo_client_id(room_id: int, message_id: int) -> str:
    return str(uuid.uuid5(ECHO_NAMESPACE, f"echo:{room_id}:{message_id}"))


class EchoBot:
    def __init__(
        self,
        *,
        url: str,
        token: str,
        room_id: int,
        state: Path | None = None,
        max_backoff: float = 30.0,
    ):
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"the server URL must be http:// or https://, not {url!r}")
        self.http = url.rstrip("/")
        self.token = token
        self.room_id = room_id
        self.state = state
        self.max_backoff = max_backoff
        self.me: int | None = None
        self.last_seq: int | None = None  # the highest change seq seen
        self.pending: dict[str, dict] = {}  # answers sent, not acknowledged yet

    # --- HTTP API -------------------------------------------------------------------------

    def api_get(self, path: str) -> dict:
        # (The URL's scheme was checked in __init__: http or https only.)
        request = urllib.request.Request(  # noqa: S310
            f"{self.http}{path}",
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)

    def websocket_url(self) -> str:
        parts = urlsplit(self.http)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path}/ws/chat/room/{self.room_id}/"
        return urlunsplit((scheme, parts.netloc, path, "format=json", ""))

    # --- the cursor -------------------------------------------------------------------------

    def load_cursor(self) -> None:
        """The last seq seen: from the state file, else the room's current one (first start:
        history is not answered)."""
        if self.state is not None and self.state.exists():
            self.last_seq = int(self.state.read_text().strip() or 0)
            logger.info("resuming after seq %d (from %s)", self.last_seq, self.state)
            return
        self.last_seq = self.api_get(f"/api/rooms/{self.room_id}/")["last_seq"]
        logger.info("first start: the room is at seq %d", self.last_seq)
        self.save_cursor()

    def saw(self, seq: int) -> None:
        if seq > self.last_seq:
            self.last_seq = seq
            self.save_cursor()

    def save_cursor(self) -> None:
        if self.state is not None:
            self.state.write_text(str(self.last_seq))

    # --- the socket -------------------------------------------------------------------------

    def start(self) -> None:
        """Who the bot is, and where it starts (blocking HTTP: run in a thread)."""
        try:
            self.me = self.api_get("/api/profiles/me/")["id"]
            self.load_cursor()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):
                raise Fatal(f"the API said {exc.code}: check the token and the room") from exc
            raise

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                if self.last_seq is None:
                    await asyncio.to_thread(self.start)
                async for _caught_up in self.session():
                    attempt = 0  # a connection that caught up resets the backoff
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                logger.info("disconnected: %r", exc)
            # Full jitter: a random wait up to the (capped) exponential delay.
            delay = random.uniform(0, min(self.max_backoff, 0.5 * 2**attempt))
            attempt += 1
            logger.info("reconnecting in %.2f s (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)

    async def session(self):
        """One connection: resume, answer, until it closes. Yields at each caught_up."""
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            websocket = await connect(self.websocket_url(), additional_headers=headers)
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403, 404):
                raise Fatal(f"handshake refused: HTTP {exc.response.status_code}") from exc
            raise
        async with websocket:
            await websocket.send(json.dumps({"type": "resume", "after_seq": self.last_seq}))
            for answer in list(self.pending.values()):  # unacknowledged before the drop
                await websocket.send(json.dumps(answer))
            try:
                async for text in websocket:
                    if await self.handle(websocket, json.loads(text)):
                        yield
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in FATAL_CLOSE_CODES:
                    raise Fatal(f"closed with {code} ({FATAL_CLOSE_CODES[code]})") from exc
                raise
            code = websocket.close_code
            if code in FATAL_CLOSE_CODES:
                raise Fatal(f"closed with {code} ({FATAL_CLOSE_CODES[code]})")

    async def handle(self, websocket, frame: dict) -> bool:
        """Act on one frame; True for ``caught_up``."""
        kind = frame.get("type")
        if kind in ("message", "message_changed", "message_deleted"):
            message = frame["message"]
            if message.get("client_id") in self.pending:  # one of our answers, stored
                del self.pending[message["client_id"]]
            if kind == "message":
                await self.answer(websocket, message)
            self.saw(frame["seq"])
        elif kind == "caught_up":
            self.saw(frame["seq"])
            logger.info("caught up at seq %d", frame["seq"])
            print(f"caught_up {frame['seq']}", flush=True)
            return True
        elif kind == "reset":
            # Too far behind to replay: skip to the room's present (a real bot might refetch
            # the history over the API here: GET /api/rooms/<id>/messages/).
            logger.warning("too far behind: skipping to seq %d", frame["seq"])
            self.last_seq = frame["seq"]
            self.save_cursor()
        elif kind == "ack":
            self.pending.pop(frame.get("client_id"), None)
        elif kind == "error":
            logger.warning("error from the server: %s", frame["error"])
            self.pending.pop(frame.get("client_id"), None)  # refused: do not resend it
        return False

    async def answer(self, websocket, message: dict) -> None:
        author = message["author"]
        if author["id"] == self.me or author["is_bot"] or message["deleted"]:
            return
        if not message["body"].strip():
            return  # (files only: nothing to echo)
        client_id = echo_client_id(self.room_id, message["id"])
        answer = {"type": "message", "body": f"echo: {message['body']}", "client_id": client_id}
        self.pending[client_id] = answer
        await websocket.send(json.dumps(answer))
        print(f"echoed {message['id']}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Parley echo bot (JSON websocket frames).")
    parser.add_argument("--url", default=os.environ.get("PARLEY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("PARLEY_TOKEN"))
    parser.add_argument("--room", type=int, default=os.environ.get("PARLEY_ROOM"))
    parser.add_argument("--state", type=Path, default=os.environ.get("PARLEY_STATE") or None)
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=float(os.environ.get("PARLEY_MAX_BACKOFF", "30")),
        help="the longest wait between two reconnects, in seconds (default 30)",
    )
    args = parser.parse_args(argv)
    if not args.token or args.room is None:
        parser.error("a token (--token or PARLEY_TOKEN) and a room (--room or PARLEY_ROOM)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    bot = EchoBot(
        url=args.url,
        token=args.token,
        room_id=int(args.room),
        state=args.state,
        max_backoff=args.max_backoff,
    )
    try:
        asyncio.run(bot.run())
    except Fatal as exc:
        logger.error("stopping: %s", exc)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
