"""The room websocket. Thin: authenticate, check access, parse JSON, call the service."""

import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from . import realtime, selectors, services
from .models import Room

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# Past this many missed messages a reconnecting page reloads its history instead.
RESUME_CAP = 500


class RoomConsumer(AsyncWebsocketConsumer):
    room: Room | None = None
    group: str | None = None

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
        # Subscribe before accepting: anything committed after this point reaches us live, and
        # anything before it is covered by the client's "resume" query.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

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
        try:
            result = await database_sync_to_async(services.message_send)(
                room=self.room,
                author=self.scope["user"],
                body=data.get("body"),
                client_id=data.get("client_id"),
            )
        except ValidationError as exc:
            await self.send_error(" ".join(exc.messages))
            return
        except services.RateLimited as exc:
            await self.send_error(
                _("You are sending too fast. Try again in %(s)d s.") % {"s": exc.retry_after}
            )
            return
        except services.RoomNotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not result.created:
            # A retry of a message we already stored: no new broadcast happens, so acknowledge
            # it to this socket directly with the very same fragment.
            html = await database_sync_to_async(realtime.render_messages_oob)([result.message])
            await self.send(text_data=html)

    async def receive_resume(self, data: dict) -> None:
        after = data.get("after_seq", 0)
        if isinstance(after, str) and after.isdigit():
            after = int(after)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            await self.send_error(_("after_seq must be a non-negative integer."))
            return
        html = await database_sync_to_async(self._render_missed)(after)
        if html:
            await self.send(text_data=html)

    def _render_missed(self, after: int) -> str:
        missed = selectors.message_list_after(room=self.room, after_seq=after, limit=RESUME_CAP + 1)
        if len(missed) > RESUME_CAP:
            return render_to_string("chat/room_detail.html#reload", {})
        if not missed:
            return ""
        return realtime.render_messages_oob(missed)

    async def chat_message(self, event: dict) -> None:
        """Group handler: the HTML was rendered once by the sender's process; just forward it."""
        await self.send(text_data=event["html"])

    async def send_error(self, text: str) -> None:
        html = render_to_string("chat/room_detail.html#composer-error", {"error": text})
        await self.send(text_data=html)
