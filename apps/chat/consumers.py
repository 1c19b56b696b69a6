"""The room websocket. Thin: authenticate, check access, parse JSON, call the service."""

import asyncio
import json
import logging
import random

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from . import realtime, selectors, services
from .models import Room

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# htmx's ws extension reconnects after these two (and after 1006/1011).
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
# What a lost channel layer (Redis down or restarting) raises.
LAYER_ERRORS = (RedisError, OSError)
# Past this many missed messages a reconnecting page reloads its history instead.
RESUME_CAP = 500
# Live messages are held for a socket that has not sent its first "resume" yet, at most this
# many and this long; then delivery starts from the room's seq at connect time.
HOLD_MAX = 1000
HOLD_SECONDS = 1.0
# How often a socket re-joins its group (a Redis restart forgets groups) and checks the
# database for messages the channel layer dropped after the last one it delivered.
TICK_SECONDS = 10.0


class RoomConsumer(AsyncWebsocketConsumer):
    """Delivery is exactly-once and in seq order per socket, although the channel layer is
    at-most-once. ``cursor`` is the highest seq this socket has been sent: a live message at or
    below it is a duplicate and dropped; one above ``cursor + 1`` means the layer lost
    something, and the gap is read from the database first. Until the client's first
    ``resume`` there is no cursor and live messages are held, so the catch-up goes first (a
    client that never resumes starts receiving after HOLD_SECONDS)."""

    room: Room | None = None
    group: str | None = None
    cursor: int | None = None
    ticker: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except LAYER_ERRORS as exc:
            # The channel layer died under us (Redis restarted): the client must reconnect,
            # here or elsewhere, and catch up.
            logger.warning("channel layer lost; closing the socket for a retry")
            await self.close_for_retry(CLOSE_SERVICE_RESTART, exc, send=send)

    async def close_for_retry(self, code: int, exc: BaseException, *, send=None) -> None:
        """Close with a code clients retry. uvicorn sends 1012/1013 as asked; daphne's
        websocket library only sends 1000 or 3000-4999 for an application, so there the
        original error goes up and daphne closes with 1011 — which clients retry too."""
        try:
            await (send or self.base_send)({"type": "websocket.close", "code": code})
        except Exception:
            raise exc from None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with a 4xxx code: htmx's ws extension does not retry those,
            # while a refused handshake would look like 1006 and be retried forever.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        pk = self.scope["url_route"]["kwargs"]["pk"]
        try:
            self.room = await database_sync_to_async(selectors.room_get_for_user)(user=user, pk=pk)
        except Room.DoesNotExist:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = realtime.room_group(self.room.pk)
        self.seq_at_connect = self.room.last_seq
        self.held: list[dict] = []
        self.delivery = asyncio.Lock()
        # Subscribe before accepting: anything committed after this point reaches us live, and
        # anything before it is covered by the client's "resume" query.
        try:
            await self.channel_layer.group_add(self.group, self.channel_name)
        except LAYER_ERRORS as exc:
            # Redis is unreachable right now: accept (a failed handshake would be an HTTP 500)
            # and close with "try again later", which clients retry with backoff.
            self.group = None
            await self.accept()
            await self.close_for_retry(CLOSE_TRY_AGAIN_LATER, exc)
            return
        await self.accept()
        self.ticker = asyncio.create_task(self.tick())

    async def disconnect(self, code) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        if self.group is None:
            return
        try:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        except LAYER_ERRORS:  # Redis unreachable: the membership expires after group_expiry
            logger.warning("group_discard failed for %s", self.channel_name, exc_info=True)

    async def tick(self) -> None:
        await asyncio.sleep(HOLD_SECONDS)
        if self.cursor is None:
            async with self.delivery:
                await self.start_from(self.seq_at_connect)
        while True:
            await asyncio.sleep(TICK_SECONDS * random.uniform(0.75, 1.25))
            try:
                await self.channel_layer.group_add(self.group, self.channel_name)
            except LAYER_ERRORS:
                # Redis is unreachable: the receive loop fails too, and __call__ closes the
                # socket for a retry. Try again on the next tick meanwhile.
                logger.warning("channel layer unreachable from %s", self.channel_name)
                continue
            if self.cursor is None:
                continue
            last_seq = await database_sync_to_async(selectors.room_last_seq)(room=self.room)
            if last_seq > self.cursor:
                async with self.delivery:
                    await self.send_missed(upto=last_seq)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.room is None:
            return
        if text_data is None:
            await self.send_error(_("Send text frames with JSON."))
            return
        if len(text_data) > settings.PARLEY_WS_MAX_FRAME:
            await self.send_error(_("That message is too large."))
            return
        try:
            data = json.loads(text_data)
        except ValueError:
            await self.send_error(_("That was not valid JSON."))
            return
        if not isinstance(data, dict):
            await self.send_error(_("Send a JSON object."))
            return
        kind = data.get("type", "message")
        if kind == "message":
            await self.receive_message(data)
        elif kind == "resume":
            await self.receive_resume(data)
        else:
            await self.send_error(_("Unknown frame type."))

    async def receive_message(self, data: dict) -> None:
        client_id = data.get("client_id")
        try:
            result = await database_sync_to_async(services.message_send)(
                room=self.room,
                author=self.scope["user"],
                body=data.get("body"),
                client_id=client_id,
            )
        except ValidationError as exc:
            await self.send_error(" ".join(exc.messages), client_id=client_id)
            return
        except services.RateLimited as exc:
            text = _("You are sending too fast. Try again in %(s)d s.") % {"s": exc.retry_after}
            await self.send_error(text, client_id=client_id)
            return
        except services.RoomNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # Acknowledge on this socket without waiting for the channel layer (which may drop
        # it), through the same ordered path as live messages. A retry of a message stored
        # earlier is acknowledged with the very same fragment, even if this socket had it.
        event = await database_sync_to_async(realtime.message_event)(result.message)
        async with self.delivery:
            if self.cursor is not None and event["seq"] > self.cursor:
                await self.deliver(event)  # in order: a gap before it is filled first
            elif self.cursor is None or not result.created:
                await self.send(text_data=event["html"])  # an ack nothing else would bring

    async def receive_resume(self, data: dict) -> None:
        after = data.get("after_seq", 0)
        if isinstance(after, str) and after.isdigit():
            after = int(after)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            await self.send_error(_("after_seq must be a non-negative integer."))
            return
        async with self.delivery:
            # The client says what it holds: send everything after that, then what was held.
            await self.start_from(after, catch_up=True)

    async def start_from(self, seq: int, *, catch_up: bool = False) -> None:
        self.cursor = seq
        if catch_up:
            await self.send_missed(upto=None)
        held, self.held = self.held, []
        for event in sorted(held, key=lambda e: e["seq"]):
            await self.deliver(event)

    async def send_missed(self, *, upto: int | None) -> None:
        """Send what the database holds after ``cursor`` (up to ``upto``) in one frame."""
        missed = await database_sync_to_async(selectors.message_list_after)(
            room=self.room, after_seq=self.cursor, limit=RESUME_CAP + 1, upto_seq=upto
        )
        if len(missed) > RESUME_CAP:
            # Too far behind to replay over the socket: the page reloads its history instead.
            await self.send(text_data=render_to_string("chat/room_detail.html#reload", {}))
            self.cursor = await database_sync_to_async(selectors.room_last_seq)(room=self.room)
            return
        if missed:
            html = await database_sync_to_async(realtime.render_messages_oob)(missed)
            await self.send(text_data=html)
            self.cursor = missed[-1].seq

    async def deliver(self, event: dict) -> None:
        seq = event["seq"]
        if seq <= self.cursor:
            return  # already sent: a catch-up overlapped the live stream
        if seq > self.cursor + 1:
            await self.send_missed(upto=seq - 1)  # the channel layer dropped something
        if seq > self.cursor:
            await self.send(text_data=event["html"])
            self.cursor = seq

    async def dispatch(self, message: dict) -> None:
        # Channels hops to the database thread (aclose_old_connections) before every handler.
        # A live message touches no database on the common path (gap fills use
        # database_sync_to_async, which cleans up connections itself), and this handler runs
        # once per recipient of every message: skip the hop.
        if message.get("type") == "chat.message":
            await self.chat_message(message)
        else:
            await super().dispatch(message)

    async def chat_message(self, event: dict) -> None:
        """Group handler: the HTML was rendered once, by the sender's process."""
        if self.cursor is None:
            if len(self.held) < HOLD_MAX:
                self.held.append(event)
            return  # past HOLD_MAX the resume query finds it in the database
        async with self.delivery:
            await self.deliver(event)

    async def send_error(self, text: str, client_id=None) -> None:
        context = {"error": text, "client_id": client_id if isinstance(client_id, str) else ""}
        html = render_to_string("chat/room_detail.html#composer-error", context)
        await self.send(text_data=html)
