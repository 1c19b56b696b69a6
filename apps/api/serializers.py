"""Input serializers check the *shape* of a request (types, presence); the services decide what is
valid (lengths, uniqueness, access). Output serializers turn models into JSON. Nothing here
repeats a rule a service already enforces."""

import uuid

from django.core.validators import ProhibitNullCharactersValidator
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from apps.chat import selectors as chat_selectors
from apps.chat.models import Message, Room
from apps.profiles.models import Profile

__all__ = [
    "DirectMessageSerializer",
    "MessageCreateSerializer",
    "MessageEditSerializer",
    "MessageSerializer",
    "ProfileSerializer",
    "ProfileUpdateSerializer",
    "ReactionCreateSerializer",
    "RoomCreateSerializer",
    "RoomSerializer",
]


# --- Fields ------------------------------------------------------------------------------------


class TextField(serializers.Field):
    """A JSON string, passed on untouched (no trimming, no length rule: the service owns those).

    DRF's CharField would turn ``123`` into ``"123"``; a chat API should say "send text" instead.
    NUL and lone surrogate characters are refused here because PostgreSQL cannot store them
    (they would otherwise surface as a database error, i.e. a 500)."""

    default_error_messages = {"invalid": _("Send text (a JSON string).")}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(ProhibitNullCharactersValidator())
        self.validators.append(ProhibitSurrogateCharactersValidator())

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class _Optional:
    """A field that may be left out, and where ``""`` (an empty browsable-API form field) and
    ``null`` both mean "none"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        if data == "":
            data = None
        return super().run_validation(data)


class ClientIdField(_Optional, serializers.UUIDField):
    """An optional UUID written as a string; a number is refused rather than read as
    ``UUID(int=…)``."""

    def to_internal_value(self, data):
        if not isinstance(data, (str, uuid.UUID)):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class IdField(_Optional, serializers.IntegerField):
    """An optional object id: a JSON integer (or the digits of one, from a form). ``""`` and
    ``null`` mean "none". Whether the object exists, and may be used, is the service's call."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)  # BigAutoField
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, (bool, float)):  # DRF would read True as 1 and 2.0 as 2
            self.fail("invalid")
        return super().to_internal_value(data)


class UploadField(serializers.Field):
    """An uploaded file (multipart). Its content is judged by the service, not here."""

    default_error_messages = {
        "invalid": _("Upload a file (multipart/form-data), not a text value."),
    }

    def to_internal_value(self, data):
        if not (hasattr(data, "read") and hasattr(data, "name")):
            self.fail("invalid")
        return data

    def to_representation(self, value):  # pragma: no cover - input only
        return None


# --- Output -----------------------------------------------------------------------------------


class ProfileSerializer(serializers.ModelSerializer):
    """A person as others see them. ``id`` is the *user* id (the key every other object uses);
    ``display_name`` is what they typed (may be empty), ``name`` what is shown (falls back to
    the username)."""

    id = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(read_only=True)
    avatar = serializers.SerializerMethodField()

    class Meta:
        model = Profile
        fields = ["id", "username", "display_name", "name", "avatar"]
        read_only_fields = fields

    def get_avatar(self, profile: Profile) -> str | None:
        if not profile.avatar:
            return None
        url = profile.avatar.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class RoomSerializer(serializers.ModelSerializer):
    """``title`` is what a person sees: the name of a public room, the other participant's name
    for a private one. ``last_seq`` is the seq of the newest message (0 when empty)."""

    title = serializers.SerializerMethodField()
    url = serializers.HyperlinkedIdentityField(view_name="api:room-detail")
    messages_url = serializers.HyperlinkedIdentityField(view_name="api:room-messages")

    class Meta:
        model = Room
        fields = [
            "id",
            "url",
            "name",
            "is_private",
            "title",
            "created_at",
            "last_message_at",
            "last_seq",
            "messages_url",
        ]
        read_only_fields = fields

    def get_title(self, room: Room) -> str:
        return chat_selectors.room_title_for(room=room, user=self.context["request"].user)


class MessageSerializer(serializers.ModelSerializer):
    """A message in its current state. ``seq`` is its place in the room (it never changes);
    ``version`` is the room seq of its latest change (= ``seq`` until it is edited, deleted or
    reacted to), the cursor for ``?after=``. ``html`` is ``body`` rendered from Markdown and
    sanitized. A deleted message is a tombstone: ``deleted`` true, ``body``/``html`` empty, no
    reactions, no ``reply_to``. ``reactions``: ``[{"emoji", "count", "users": [user ids],
    "me"}]`` in first-reacted order, ``me`` = you reacted.

    Read from ``selectors.with_timeline`` querysets: authors, replies and reactions prefetched,
    so a page costs the same queries whatever its size."""

    author = ProfileSerializer(source="author.profile", read_only=True)
    reply_to = serializers.IntegerField(source="reply_to_id", read_only=True, allow_null=True)
    deleted = serializers.BooleanField(read_only=True)
    reactions = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "room",
            "seq",
            "version",
            "author",
            "body",
            "html",
            "client_id",
            "created_at",
            "edited_at",
            "deleted",
            "reply_to",
            "reactions",
        ]
        read_only_fields = fields

    def get_reactions(self, message: Message) -> list[dict]:
        me = self.context["request"].user.pk
        return [
            {
                "emoji": reaction["emoji"],
                "count": reaction["count"],
                "users": list(reaction["users"]),
                "me": me in reaction["users"],
            }
            for reaction in message.reaction_summary
        ]


# --- Input ------------------------------------------------------------------------------------


class RoomCreateSerializer(serializers.Serializer):
    name = TextField()


class MessageCreateSerializer(serializers.Serializer):
    """Only ``body``, ``client_id`` and ``reply_to`` are read: the author is whoever
    authenticated and the room comes from the URL, whatever else the payload claims."""

    body = TextField(style={"base_template": "textarea.html"})
    client_id = ClientIdField(
        help_text=_("Optional UUID chosen by the client; resending it returns the same message.")
    )
    reply_to = IdField(help_text=_("Optional: the id of the message (in this room) you answer."))


class MessageEditSerializer(serializers.Serializer):
    body = TextField(style={"base_template": "textarea.html"})


class ReactionCreateSerializer(serializers.Serializer):
    emoji = TextField(help_text=_("One emoji from the app's list, e.g. 👍."))


class DirectMessageSerializer(serializers.Serializer):
    username = TextField()


class ProfileUpdateSerializer(serializers.Serializer):
    """Every field is optional (PATCH): what is left out stays as it is."""

    display_name = TextField(required=False)
    avatar = UploadField(required=False)
    remove_avatar = serializers.BooleanField(required=False)
