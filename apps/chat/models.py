import uuid

from django.conf import settings
from django.core.files.storage import storages
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.images import fit_within


class RoomQuerySet(models.QuerySet):
    def visible_to(self, user) -> "RoomQuerySet":
        """THE access rule. A public room is visible to every signed-in user; a private room
        exists only for its participants. Page views, the websocket consumer, the services and
        every API view go through this method, so they cannot disagree."""
        if user is None or not user.is_authenticated:
            return self.none()
        is_member = Membership.objects.filter(room=OuterRef("pk"), user=user)
        return self.filter(Q(is_private=False) | Q(Exists(is_member)))

    def postable_by(self, user) -> "RoomQuerySet":
        """Rooms ``user`` may post in (send, edit, react: ``selectors.room_access`` with
        ``posting=True`` asks it in the access query itself). Today exactly ``visible_to``
        (posting in a public room you have not joined joins you); kept as a named sibling so a
        future read-only rule (announcement rooms, archived rooms) has one place to live. It
        must stay a subset of ``visible_to`` (``selectors.room_access`` relies on it)."""
        return self.visible_to(user)

    def managed_by(self, user) -> "RoomQuerySet":
        """Rooms ``user`` may manage (delete anyone's message; more in later issues): the rooms
        they own, except a 1:1 conversation, where both people are equal. Always a subset of
        ``visible_to``."""
        if user is None or not user.is_authenticated:
            return self.none()
        is_owner = Membership.objects.filter(
            room=OuterRef("pk"), user=user, role=Membership.Role.OWNER
        )
        return self.filter(Exists(is_owner), dm_key__isnull=True)

    def public(self) -> "RoomQuerySet":
        return self.filter(is_private=False)


class Room(models.Model):
    class Kind(models.TextChoices):
        PUBLIC = "public", _("Public room")
        PRIVATE = "private", _("Private group")
        DM = "dm", _("Direct conversation")

    class RoomMentions(models.TextChoices):
        MEMBERS = "members", _("Every member")
        OWNERS = "owners", _("Owners only")

    name = models.CharField(_("name"), max_length=64, blank=True)
    topic = models.CharField(_("topic"), max_length=250, blank=True, default="")
    # Who may mention @room (every member of the room).
    room_mentions = models.CharField(
        max_length=16, choices=RoomMentions.choices, default=RoomMentions.MEMBERS
    )
    is_private = models.BooleanField(default=False)
    # For a private 1:1 room: "<lower user id>:<higher user id>". Unique, so two concurrent
    # "Message" clicks cannot create two rooms for one pair.
    dm_key = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # The room's event sequence: every change to its timeline (a message sent, edited or
    # deleted, a reaction added or removed) takes the next number, under the row's write lock
    # inside the changing transaction, so seqs are gap-free and in commit order.
    last_seq = models.BigIntegerField(default=0)

    objects = RoomQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                condition=Q(is_private=False),
                name="chat_room_public_name_ci_unique",
            ),
            models.CheckConstraint(
                condition=Q(is_private=True) | ~Q(name=""), name="chat_room_public_has_name"
            ),
        ]
        indexes = [models.Index(fields=["is_private", "-last_message_at"])]

    def __str__(self) -> str:
        return self.name or f"room {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("chat:room_detail", kwargs={"pk": self.pk})

    @property
    def activity_at(self):
        return self.last_message_at or self.created_at

    @property
    def kind(self) -> str:
        """ "public", "private" (a private group: invite-only, named) or "dm" (1:1)."""
        return room_kind(is_private=self.is_private, dm_key=self.dm_key)

    @property
    def is_dm(self) -> bool:
        return self.dm_key is not None


def room_kind(*, is_private: bool, dm_key) -> str:
    """The kind from the two columns that decide it (selectors read them with ``values()``)."""
    if dm_key is not None:
        return Room.Kind.DM.value
    return Room.Kind.PRIVATE.value if is_private else Room.Kind.PUBLIC.value


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        MEMBER = "member", _("Member")

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )

    class Notify(models.TextChoices):
        ALL = "all", _("All messages")
        MENTIONS = "mentions", _("Mentions only")
        NONE = "none", _("Nothing")

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # Read pointer, in the room's seq space: a message is unread for this user when its seq is
    # above it, it is someone else's and it is not deleted (selectors.unread_states).
    last_read_seq = models.BigIntegerField(default=0)
    # What notifies: every message, mentions (and every DM message), or nothing ("muted").
    # The services set it when they create the membership: DMs "all", every other room
    # "mentions".
    notify = models.CharField(max_length=16, choices=Notify.choices, default=Notify.MENTIONS)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="chat_membership_unique"),
        ]
        indexes = [models.Index(fields=["user", "room"])]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id} ({self.role})"


class MessageQuerySet(models.QuerySet):
    """Messages. ``with_files()`` (used by ``selectors.with_timeline``) reads the attachments
    of the fetched messages that have any (``has_attachments``) in one more query — and in
    none when no message of the batch has files, which a plain ``prefetch_related`` cannot
    do (it would add a query to every page and every event)."""

    _with_files = False

    def with_files(self) -> "MessageQuerySet":
        clone = self._chain()
        clone._with_files = True
        return clone

    def _clone(self):
        clone = super()._clone()
        clone._with_files = self._with_files
        return clone

    def _fetch_all(self):
        fetched = self._result_cache is not None
        super()._fetch_all()
        if self._with_files and not fetched:
            prefetch_files(self._result_cache)


def prefetch_files(messages) -> None:
    """Give each message (model instances; anything else is skipped) its attachments in
    order, as a prefetch cache: one query for those with ``has_attachments``, none for the
    others."""
    messages = [m for m in messages if isinstance(m, Message)]
    wanted = {}
    for message in messages:
        cache = message.__dict__.setdefault("_prefetched_objects_cache", {})
        if "attachments" in cache:
            continue
        if message.has_attachments and message.deleted_at is None:
            wanted[message.pk] = message
        cache["attachments"] = []
    if wanted:
        for attachment in Attachment.objects.filter(message_id__in=list(wanted)).order_by(
            "message_id", "position", "pk"
        ):
            message = wanted[attachment.message_id]
            attachment.message = message
            message._prefetched_objects_cache["attachments"].append(attachment)


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages"
    )
    # The room seq the message was born with: its position (order, paging). Never changes.
    seq = models.BigIntegerField()
    # The room seq of its latest change (= seq when new): catch-up is "version > N".
    version = models.BigIntegerField()
    body = models.TextField(max_length=4000, blank=True)  # the Markdown source; "" once deleted
    html = models.TextField(blank=True, default="")  # rendered and sanitized at save/edit
    # Set by the sending client; the same (author, client_id) stores one row (idempotent retry).
    client_id = models.UUIDField(null=True, blank=True, default=None)
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    # A deleted message stays as a tombstone (body, html, reactions and reply erased), so seqs
    # and replies keep pointing somewhere.
    deleted_at = models.DateTimeField(null=True, blank=True)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    # The body mentions @room (every member). Who else it mentions: Mention rows.
    mentions_room = models.BooleanField(default=False)
    # What search matches (apps/chat/search.py): ``search.fold`` of the body and the names of
    # its files, set by the services whenever either changes; "" once deleted. A column of its
    # own so that case-insensitive substring search is one LIKE on every database (SQLite's
    # LIKE and lower() fold ASCII only) and, on PostgreSQL, a trigram index serves it.
    search_text = models.TextField(blank=True, default="", editable=False)
    # The message carries files (``has:file``); set with its attachments, cleared on delete.
    has_attachments = models.BooleanField(default=False)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_room_seq_unique"),
            # Each change takes its own seq, so versions are unique too; this is also the
            # index of the catch-up query.
            models.UniqueConstraint(
                fields=["room", "version"], name="chat_message_room_version_unique"
            ),
            models.UniqueConstraint(
                fields=["author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chat_message_author_client_id_unique",
            ),
        ]
        indexes = [
            # The @room messages of a room by seq: the mention count finds them without
            # reading every unread message (small: few messages mention @room).
            models.Index(
                fields=["room", "seq"],
                condition=Q(mentions_room=True),
                name="chat_message_room_mentions",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} in {self.room_id}"

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def files(self) -> list["Attachment"]:
        """Its attachments in order (none once deleted): from the prefetch cache that the
        services and ``MessageQuerySet.with_files`` set, else one query."""
        if self.deleted or self.pk is None:
            return []
        cache = getattr(self, "_prefetched_objects_cache", {})
        if "attachments" in cache:
            return list(cache["attachments"])
        if not self.has_attachments:
            return []
        return list(self.attachments.order_by("position", "pk"))

    @property
    def mention_ids(self) -> list[int]:
        """The ids of the users the message mentions, ascending (kept after a delete: the
        delete's event says what it had; readers that show a deleted message show none).
        Read from what the services set (``_mention_ids``), else from the ``mention_csv``
        annotation of ``selectors.with_timeline`` (no query), else the prefetched
        ``mention_set``, else one query."""
        ids = getattr(self, "_mention_ids", None)
        if ids is None:
            csv = getattr(self, "mention_csv", _MISSING)
            if csv is not _MISSING:
                ids = [int(part) for part in csv.split(",")] if csv else []
            elif "mention_set" in getattr(self, "_prefetched_objects_cache", {}):
                ids = [mention.user_id for mention in self.mention_set.all()]
            elif self.pk is None:
                ids = []
            else:
                ids = list(Mention.objects.filter(message=self).values_list("user_id", flat=True))
            self._mention_ids = ids = sorted(ids)
        return ids

    @property
    def reaction_summary(self) -> list[dict]:
        """``[{"emoji", "count", "users": [ids], "names": [the first display names], "others":
        how many more}]`` in the order the emoji were first used. Reads the prefetched
        reactions (selectors.with_timeline)."""
        shown = settings.PARLEY_REACTION_NAMES_SHOWN
        summary: dict[str, dict] = {}
        for reaction in self.reactions.all():
            entry = summary.setdefault(
                reaction.emoji,
                {"emoji": reaction.emoji, "count": 0, "users": [], "names": [], "others": 0},
            )
            entry["count"] += 1
            entry["users"].append(reaction.user_id)
            if len(entry["names"]) < shown:
                entry["names"].append(_display_name(reaction.user))
            else:
                entry["others"] += 1
        return list(summary.values())


def attachment_path(attachment: "Attachment", filename: str) -> str:
    """Where an original is stored: a random name (nothing of the uploader's file name, which
    is kept in ``Attachment.name`` for display only), grouped by month."""
    return f"{timezone.now():%Y/%m}/{uuid.uuid4().hex}"


def thumbnail_path(attachment: "Attachment", filename: str) -> str:
    return f"{timezone.now():%Y/%m}/{uuid.uuid4().hex}.thumb.webp"


def attachment_storage():
    """``STORAGES["attachments"]``: not MEDIA_ROOT, which is public (project/settings.py)."""
    return storages["attachments"]


class Attachment(models.Model):
    """A file uploaded to a room. Unsent (``message`` is None) it belongs to its uploader
    only, for ``PARLEY_ATTACHMENT_UNSENT_TTL``; sent, it is part of its message and visible to
    exactly whoever may see the room (``Room.objects.visible_to``). Deleting the message
    deletes it and its stored files."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        FILE = "file", _("File")

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attachments")
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    # Order within its message (the order the ids were given in).
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.FILE)
    # The stored original: for an image, re-encoded without metadata (EXIF, GPS).
    file = models.FileField(upload_to=attachment_path, storage=attachment_storage, max_length=255)
    thumbnail = models.FileField(
        upload_to=thumbnail_path, storage=attachment_storage, max_length=255, blank=True
    )
    name = models.CharField(max_length=255)  # the uploader's file name, cleaned, for display
    size = models.BigIntegerField()  # bytes of the stored file
    content_type = models.CharField(max_length=127)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "pk"]
        indexes = [
            # Unsent uploads by age: what the clean-up command deletes.
            models.Index(
                fields=["created_at"],
                condition=Q(message__isnull=True),
                name="chat_attachment_unsent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} in {self.room_id}"

    @property
    def is_image(self) -> bool:
        return self.kind == self.Kind.IMAGE

    @property
    def url(self) -> str:
        """Where it is served (apps/chat/files.py), root-relative."""
        return reverse("chat:file", kwargs={"pk": self.pk, "name": self.name})

    @property
    def thumbnail_url(self) -> str | None:
        if not self.thumbnail:
            return None
        return reverse("chat:file_thumbnail", kwargs={"pk": self.pk})

    @property
    def thumbnail_size(self) -> tuple[int, int] | None:
        """The thumbnail's width and height (made by ``images.fit_within`` from the
        original's, so it is computed, not stored)."""
        if not self.width or not self.height:
            return None
        return fit_within(self.width, self.height, settings.PARLEY_THUMBNAIL_SIZE)


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions"
    )
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="chat_reaction_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


class Mention(models.Model):
    """A user a message mentions by name (@room is ``Message.mentions_room``, no rows). The
    message's room and seq are copied here (neither ever changes) so the mention-unread count
    of selectors.unread_states reads the (user, room, seq) index: the user's mentions in that
    room above the pointer, without reading the room's other messages."""

    # No single-column index on message or user: the unique (message, user) and the (user,
    # room, seq) index lead with them.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField()  # the message's seq

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="chat_mention_unique"),
        ]
        indexes = [models.Index(fields=["user", "room", "seq"], name="chat_mention_user_room_seq")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.message_id}"


_MISSING = object()


def _display_name(user) -> str:
    profile = getattr(user, "profile", None)  # a user made outside sign-up may have none
    return profile.name if profile is not None else user.get_username()


class Webhook(models.Model):
    """An incoming webhook (issue 13): ``POST /hooks/<secret>/`` posts ``text`` in ``room`` as
    ``bot`` (a bot user made for it, apps/chat/webhooks.py). Only the SHA-256 of the secret is
    stored (the lookup key) and its first characters (to tell webhooks apart); the secret is
    shown once. Revoking deletes the row; deleting the room deletes its webhooks."""

    NAME_MAX_LENGTH = 64

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="webhooks")
    bot = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
