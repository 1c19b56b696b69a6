"""Incoming webhooks (issue 13): make, list, revoke, and post through one.

A webhook belongs to a room and posts as a bot user made for it (named after the webhook,
owned by its creator, marked BOT: ``apps.profiles.bots``), which is made a member of the room
when the webhook is made — a private room's too. Its secret (``hook_`` + 32 random bytes) is
in the URL ``/hooks/<secret>/`` and is shown once; the database keeps its SHA-256 (the lookup
key, compared by the database as a digest, so a lookup's timing says nothing about the secret)
and its first characters. Revoking deletes the row: the next POST is a 404. Deleting the room
deletes its webhooks (the foreign key).

Who manages a room's webhooks is ``Room.objects.managed_by`` (the room's owners), and anyone
else gets ``RoomNotFound`` (404), as for every other thing a stranger may not know about.
Posting goes through ``services.message_send`` as the bot: access, validation, the room's seq,
the broadcast after commit — nothing of its own but a per-webhook rate limit."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.tokens import hash_secret
from apps.core import ratelimit
from apps.core.text import Wording, clean_name
from apps.profiles import bots

from . import realtime, services
from .errors import RoomNotFound
from .models import Membership, Room, Webhook

__all__ = [
    "WebhookNotFound",
    "webhook_create",
    "webhook_list_for_room",
    "webhook_post",
    "webhook_revoke",
]

SECRET_PREFIX = "hook_"
SECRET_BYTES = 32
PREFIX_LENGTH = len(SECRET_PREFIX) + 6
SECRET_MAX_LENGTH = 128

_NAME = Wording(
    not_text=gettext_lazy("Enter a name for the webhook."),
    empty=gettext_lazy("Enter a name for the webhook."),
    too_long=gettext_lazy("A webhook name can have at most %(max)d characters (it has %(len)d)."),
    forbidden=gettext_lazy("A webhook name cannot contain control or invisible characters."),
)


class WebhookNotFound(Exception):
    """No such webhook in this room (revoked, another room's, a wrong secret): 404."""

    def __init__(self, message=None):
        self.message = str(message or _("No such webhook."))
        super().__init__(self.message)


def _managed(room: Room, user) -> Room:
    """The room if ``user`` manages it (THE rule: ``Room.objects.managed_by``), else
    RoomNotFound."""
    if not Room.objects.managed_by(user).filter(pk=room.pk).exists():
        raise RoomNotFound
    return room


def webhook_list_for_room(*, room: Room, user) -> QuerySet[Webhook]:
    """The room's webhooks, newest first, with their bots (owners only)."""
    _managed(room, user)
    return Webhook.objects.filter(room=room).select_related("bot__profile", "created_by")


def webhook_create(*, room: Room, user, name) -> tuple[Webhook, str]:
    """A new webhook of ``room`` (owners only) and its secret, this once. Makes its bot (the
    bot limits and rate of ``user`` apply) and the bot's membership of the room. Refused
    past ``PARLEY_WEBHOOKS_PER_ROOM_MAX`` webhooks (ValidationError ``too_many``)."""
    _managed(room, user)
    name = clean_name(name, max_length=Webhook.NAME_MAX_LENGTH, wording=_NAME)
    limit = settings.PARLEY_WEBHOOKS_PER_ROOM_MAX
    if Webhook.objects.filter(room=room).count() >= limit:
        raise ValidationError(
            _("This room has %(max)d webhooks already: revoke one first.") % {"max": limit},
            code="too_many",
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with transaction.atomic():
        bot = bots.bot_create(owner=user, name=name[:40]).user
        room_seq = Room.objects.filter(pk=room.pk).values_list("last_seq", flat=True).first()
        Membership.objects.bulk_create(
            [services._new_member(room, bot, last_read_seq=room_seq or 0)],
            ignore_conflicts=True,
        )
        webhook = Webhook.objects.create(
            room=room,
            bot=bot,
            name=name,
            prefix=secret[:PREFIX_LENGTH],
            key_hash=hash_secret(secret),
            created_by=user,
            created_at=timezone.now(),
        )
        realtime.emit_user_rooms([bot.pk])
    return webhook, secret


def webhook_revoke(*, room: Room, user, webhook_id) -> Webhook:
    """Delete the room's webhook ``webhook_id`` (owners only): its URL is a 404 from now on.
    Its bot stays (its messages keep their author) and may be deleted on the Bots page."""
    _managed(room, user)
    try:
        webhook_id = int(webhook_id)
    except (TypeError, ValueError):
        raise WebhookNotFound from None
    webhook = Webhook.objects.filter(room=room, pk=webhook_id).first()
    if webhook is None:
        raise WebhookNotFound
    webhook.delete()
    return webhook


def webhook_lookup(secret) -> Webhook | None:
    """The live webhook of this secret (with its room and bot), or None. One query."""
    if not isinstance(secret, str) or not secret or len(secret) > SECRET_MAX_LENGTH:
        return None
    return (
        Webhook.objects.select_related("room", "bot")
        .filter(key_hash=hash_secret(secret), bot__is_active=True)
        .first()
    )


def webhook_post(*, secret, text, webhook: Webhook | None = None) -> services.SendResult:
    """Post ``text`` as the webhook's bot in its room. WebhookNotFound for a wrong or revoked
    secret (or a bot no longer in a private room); RateLimited past ``PARLEY_WEBHOOK_RATE``
    per webhook; ValidationError for a missing, empty or too long text (message_send's
    words). ``webhook``: the one ``webhook_lookup(secret)`` already found (no second query)."""
    if webhook is None or webhook.key_hash != hash_secret(secret):
        webhook = webhook_lookup(secret)
    if webhook is None:
        raise WebhookNotFound
    if not isinstance(text, str):
        raise ValidationError(_('Send the message as text: {"text": "…"}.'), code="text")
    count, window = settings.PARLEY_WEBHOOK_RATE
    try:
        ratelimit.hit(key=f"webhook:{webhook.pk}", limit=count, window=window)
    except ratelimit.RateLimited as exc:
        exc.message = _("This webhook is posting too fast. Try again in %(s)d s.") % {
            "s": exc.retry_after
        }
        raise
    try:
        result = services.message_send(room=webhook.room, author=webhook.bot, body=text)
    except RoomNotFound:  # the bot was removed from the private group: the hook is dead
        raise WebhookNotFound(_("This webhook can no longer post in its room.")) from None
    Webhook.objects.filter(pk=webhook.pk).update(last_used_at=timezone.now())
    return result
