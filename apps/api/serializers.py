"""Input serializers check the *shape* of a request (types, presence); the services decide what is
valid (lengths, uniqueness, access). Output serializers turn models into JSON. Nothing here
repeats a rule a service already enforces."""

import uuid

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from apps.chat import payloads, presence
from apps.chat import selectors as chat_selectors
from apps.chat.models import Attachment, Message, Room
from apps.profiles.models import Profile

from . import examples

__all__ = [
    "AttachmentSerializer",
    "AttachmentUploadSerializer",
    "DirectMessageSerializer",
    "MemberAddSerializer",
    "MemberSerializer",
    "MembershipUpdateSerializer",
    "MessageCreateSerializer",
    "MessageEditSerializer",
    "MessageSerializer",
    "MyProfileSerializer",
    "PersonSerializer",
    "ProfileSerializer",
    "ProfileUpdateSerializer",
    "ReactionCreateSerializer",
    "ReadSerializer",
    "RoomCreateSerializer",
    "RoomSerializer",
    "RoomUpdateSerializer",
    "UnreadStateSerializer",
]


# --- Fields ------------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
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


class AnyValue(serializers.Field):
    """A value passed to the service as it came (the service parses it with its one rule)."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):  # pragma: no cover - input only
        return value


@extend_schema_field({"type": "integer", "minimum": 0})
class SeqValue(AnyValue):
    """A seq, parsed by the service (``errors.parse_seq``): a whole number, 0 or more."""


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true``/``false`` (or a form's ``"true"``/``"false"``, ``"1"``/``"0"``); not
    ``1.0`` or ``"yes please"``."""

    def to_internal_value(self, data):
        if isinstance(data, float):
            self.fail("invalid", input=data)
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.BINARY)
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


class _ProfileListSerializer(serializers.ListSerializer):
    """Many profiles: their presence read in one cache get_many for the page."""

    def to_representation(self, data):
        profiles = list(data.all() if hasattr(data, "all") else data)
        self.child.presence_states = presence.states_for(profiles)
        return super().to_representation(profiles)


class PersonSerializer(serializers.ModelSerializer):
    """A person as others see them. ``id`` is the *user* id (the key every other object uses);
    ``display_name`` is what they typed (may be empty), ``name`` what is shown (falls back to
    the username). A message's ``author``: no presence (a page of messages would read it
    once per author for nothing)."""

    id = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(read_only=True)
    avatar = serializers.SerializerMethodField()

    class Meta:
        model = Profile
        fields = ["id", "username", "display_name", "name", "avatar", "is_bot"]
        read_only_fields = fields

    def get_avatar(self, profile: Profile) -> str | None:
        if not profile.avatar:
            return None
        url = profile.avatar.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


@extend_schema_serializer(examples=[examples.example("A profile", examples.PROFILE)])
class ProfileSerializer(PersonSerializer):
    """``/api/profiles/``: a person, with their ``presence``."""

    # online | away | offline (apps/chat/presence.py); offline when they hide it.
    presence = serializers.SerializerMethodField()

    class Meta(PersonSerializer.Meta):
        fields = [*PersonSerializer.Meta.fields, "presence"]
        read_only_fields = fields
        list_serializer_class = _ProfileListSerializer

    def get_presence(self, profile: Profile) -> str:
        states = getattr(self, "presence_states", None)
        if states is None or profile.user_id not in states:
            states = presence.states_for([profile])
        return states[profile.user_id]


@extend_schema_serializer(examples=[examples.example("Your profile", examples.MY_PROFILE)])
class MyProfileSerializer(ProfileSerializer):
    """One's own profile (``/api/profiles/me/``): also the privacy settings, which nobody
    else sees."""

    class Meta(ProfileSerializer.Meta):
        fields = [*ProfileSerializer.Meta.fields, "show_presence", "send_read_receipts", "language"]
        read_only_fields = fields


@extend_schema_serializer(examples=[examples.example("A room", examples.ROOM)])
class RoomSerializer(serializers.ModelSerializer):
    """``title`` is what a person sees: the name of a public room or a private group, the other
    participant's name for a 1:1 conversation. ``kind`` is ``public``, ``private`` (a private
    group) or ``dm``. ``last_seq`` is the seq of the room's latest change (0 when empty).

    The rest is yours: ``is_member``; ``role`` (``owner``/``member``), ``notify``
    (``all``/``mentions``/``none``) and ``last_read_seq`` (your read pointer, in seq space) are
    null when you have not joined; ``unread_count`` (messages after your pointer, not yours, not
    deleted) and ``mention_count`` (those that mention you or @room) are capped at 100 ("99+")
    and 0 when you have not joined.

    The per-viewer numbers are read from ``context["unread"]`` (``{room id: UnreadState}``, one
    query for a whole page: ``selectors.unread_states``); ``member_count`` from the
    ``member_count`` annotation (``selectors.with_membership``)."""

    title = serializers.SerializerMethodField()
    url = serializers.HyperlinkedIdentityField(view_name="api:room-detail")
    messages_url = serializers.HyperlinkedIdentityField(view_name="api:room-messages")
    members_url = serializers.HyperlinkedIdentityField(view_name="api:room-members")
    kind = serializers.CharField(read_only=True)
    member_count = serializers.SerializerMethodField()
    is_member = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    notify = serializers.SerializerMethodField()
    last_read_seq = serializers.SerializerMethodField()
    unread_count = serializers.SerializerMethodField()
    mention_count = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = [
            "id",
            "url",
            "kind",
            "name",
            "is_private",
            "title",
            "topic",
            "room_mentions",
            "created_at",
            "last_message_at",
            "last_seq",
            "member_count",
            "is_member",
            "role",
            "notify",
            "last_read_seq",
            "unread_count",
            "mention_count",
            "messages_url",
            "members_url",
        ]
        read_only_fields = fields

    def get_title(self, room: Room) -> str:
        # A named room (public or a private group) is titled by its name, as the sidebar
        # titles it; only a 1:1 conversation by the other person (room_title_for still names
        # a group's members: notes/api-status.md, request 1).
        if not room.is_dm:
            return room.name
        return chat_selectors.room_title_for(room=room, user=self.context["request"].user)

    def get_member_count(self, room: Room) -> int:
        count = getattr(room, "member_count", None)
        return room.memberships.count() if count is None else count

    def _state(self, room: Room):
        """Your ``UnreadState`` for the room, or None when you are not a member."""
        states = self.context.get("unread")
        if states is None:  # a single room outside the views' helpers: one query
            user = self.context["request"].user
            states = chat_selectors.unread_states(user_id=user.pk, room_ids=[room.pk])
            self.context["unread"] = states
        return states.get(room.pk)

    def get_is_member(self, room: Room) -> bool:
        return self._state(room) is not None

    def get_role(self, room: Room) -> str | None:
        state = self._state(room)
        return None if state is None else state.role

    def get_notify(self, room: Room) -> str | None:
        state = self._state(room)
        return None if state is None else state.notify

    def get_last_read_seq(self, room: Room) -> int | None:
        state = self._state(room)
        return None if state is None else state.pointer

    def get_unread_count(self, room: Room) -> int:
        state = self._state(room)
        return 0 if state is None else state.unread

    def get_mention_count(self, room: Room) -> int:
        state = self._state(room)
        return 0 if state is None else state.mentions


@extend_schema_serializer(examples=[examples.example("Your read state", examples.UNREAD)])
class UnreadStateSerializer(serializers.Serializer):
    """Your read state of one room (``selectors.UnreadState``): the answer of ``read/``."""

    room = serializers.IntegerField(source="room_id")
    last_read_seq = serializers.IntegerField(source="pointer")
    unread_count = serializers.IntegerField(source="unread")
    mention_count = serializers.IntegerField(source="mentions")


@extend_schema_serializer(examples=[examples.example("A read receipt", examples.RECEIPT)])
class ReceiptSerializer(serializers.Serializer):
    """A read receipt (issue 11): a member who sends receipts and how far they have read
    (their read pointer, in the room's seq space)."""

    user = serializers.IntegerField(help_text=_("The member's user id."))
    last_read_seq = serializers.IntegerField(
        help_text=_("They have read every message up to this seq.")
    )


@extend_schema_serializer(examples=[examples.example("A member", examples.MEMBER)])
class MemberSerializer(serializers.Serializer):
    """A member of a room (a ``Membership`` with its user and profile): ``id`` is the user id,
    ``name`` what is shown (the display name, else the username), ``role`` owner/member."""

    id = serializers.IntegerField(source="user_id")
    username = serializers.CharField(source="user.username")
    display_name = serializers.SerializerMethodField()
    name = serializers.SerializerMethodField()
    avatar = serializers.SerializerMethodField()
    is_bot = serializers.SerializerMethodField()
    role = serializers.CharField()

    def _profile(self, membership) -> Profile | None:
        return getattr(membership.user, "profile", None)

    def get_display_name(self, membership) -> str:
        profile = self._profile(membership)
        return profile.display_name if profile is not None else ""

    def get_name(self, membership) -> str:
        profile = self._profile(membership)
        return profile.name if profile is not None else membership.user.get_username()

    def get_is_bot(self, membership) -> bool:
        profile = self._profile(membership)
        return bool(profile is not None and profile.is_bot)

    def get_avatar(self, membership) -> str | None:
        profile = self._profile(membership)
        if profile is None or not profile.avatar:
            return None
        url = profile.avatar.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


@extend_schema_serializer(examples=[examples.example("An image", examples.ATTACHMENT)])
class AttachmentSerializer(serializers.ModelSerializer):
    """A file: ``url`` serves it (a download, or the image inline), ``thumbnail_url`` an
    image's WebP thumbnail (null for other files). Both need the same access as the room
    (an unsent upload: its uploader only)."""

    url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = [
            "id",
            "name",
            "size",
            "content_type",
            "kind",
            "width",
            "height",
            "url",
            "thumbnail_url",
        ]
        read_only_fields = fields

    def _absolute(self, url: str | None) -> str | None:
        request = self.context.get("request")
        if url is None or request is None:
            return url
        return request.build_absolute_uri(url)

    def get_url(self, attachment: Attachment) -> str:
        return self._absolute(attachment.url)

    def get_thumbnail_url(self, attachment: Attachment) -> str | None:
        return self._absolute(attachment.thumbnail_url)


@extend_schema_serializer(examples=[examples.example("A message", examples.MESSAGE)])
class MessageSerializer(serializers.ModelSerializer):
    """A message in its current state. ``seq`` is its place in the room (it never changes);
    ``version`` is the room seq of its latest change (= ``seq`` until it is edited, deleted or
    reacted to), the cursor for ``?after=``. ``html`` is ``body`` rendered from Markdown and
    sanitized. A deleted message is a tombstone: ``deleted`` true, ``body``/``html`` empty, no
    reactions, no ``reply_to``. ``reactions``: ``[{"emoji", "count", "users": [user ids],
    "me"}]`` in first-reacted order, ``me`` = you reacted.

    Read from ``selectors.with_timeline`` querysets: authors, replies and reactions prefetched,
    so a page costs the same queries whatever its size."""

    author = PersonSerializer(source="author.profile", read_only=True)
    reply_to = serializers.IntegerField(source="reply_to_id", read_only=True, allow_null=True)
    deleted = serializers.BooleanField(read_only=True)
    reactions = serializers.SerializerMethodField()
    mentions = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(source="files", many=True, read_only=True)

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
            "mentions",
            "attachments",
        ]
        read_only_fields = fields

    def to_representation(self, message: Message) -> dict:
        """``payloads.message_data`` (the one definition, shared with the websocket's JSON
        frames) with what depends on the request: ``me`` on each reaction, absolute URLs. The
        fields above describe it (the schema); a test proves the two agree
        (``fields_representation``)."""
        request = self.context["request"]
        data = payloads.with_viewer(payloads.message_data(message), request.user.pk)
        return payloads.absolute_urls(data, request.build_absolute_uri)

    def fields_representation(self, message: Message) -> dict:
        """DRF's representation from the declared fields (for the test that they agree)."""
        return super().to_representation(message)

    def get_mentions(self, message: Message) -> list[int]:
        """The ids of the people the message mentions (``@room`` is not among them); none for
        a deleted message, whose mentions count for nothing."""
        if message.deleted:
            return []
        return list(message.mention_ids)

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


@extend_schema_serializer(examples=[examples.example("A search hit", examples.SEARCH_RESULT)])
class SearchResultSerializer(serializers.Serializer):
    """A search hit (``apps.chat.search.SearchResult``): the message's ``id``, ``room`` (id),
    ``seq``, ``author`` (as in messages), ``created_at``; ``snippet``, at most ~200 characters
    of its text around the first match, plain text; ``highlights``, ``[[start, end], …]``
    offsets of the matches in ``snippet`` (Unicode code points, end exclusive); ``url``, the
    room page opened at the message."""

    id = serializers.IntegerField(source="message.pk")
    room = serializers.IntegerField(source="message.room_id")
    seq = serializers.IntegerField(source="message.seq")
    author = PersonSerializer(source="message.author.profile")
    created_at = serializers.DateTimeField(source="message.created_at")
    snippet = serializers.CharField(source="snippet.text")
    highlights = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    def get_highlights(self, result) -> list[list[int]]:
        return [[start, end] for start, end in result.snippet.highlights]

    def get_url(self, result) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(result.url) if request is not None else result.url


# --- Input ------------------------------------------------------------------------------------


class RoomCreateSerializer(serializers.Serializer):
    """``{"name"}`` makes a public room; with ``"private": true`` and ``"members"`` (usernames)
    a private group. Which names, members and topics are acceptable is the service's call."""

    name = TextField()
    private = StrictBooleanField(
        required=False, default=False, help_text=_("true: a private group (invite-only).")
    )
    members = serializers.ListField(
        child=TextField(),
        required=False,
        default=list,
        help_text=_("Usernames of the people to add to a private group."),
    )
    topic = TextField(required=False, default="")


class RoomUpdateSerializer(serializers.Serializer):
    """PATCH: what is left out stays as it is."""

    name = TextField(required=False)
    topic = TextField(required=False)
    room_mentions = TextField(
        required=False, help_text=_("Who may mention @room: members (default) or owners.")
    )


class MemberAddSerializer(serializers.Serializer):
    username = TextField()


class ReadSerializer(serializers.Serializer):
    seq = SeqValue(help_text=_("The seq of the newest message you have seen."))
    force = StrictBooleanField(
        required=False,
        default=False,
        help_text=_("true: move your pointer back too (mark as unread from here)."),
    )


class MembershipUpdateSerializer(serializers.Serializer):
    notify = TextField(help_text=_("all, mentions or none."))


class MessageCreateSerializer(serializers.Serializer):
    """Only ``body``, ``client_id`` and ``reply_to`` are read: the author is whoever
    authenticated and the room comes from the URL, whatever else the payload claims."""

    body = TextField(
        required=False,
        default="",
        style={"base_template": "textarea.html"},
        help_text=_("The text; may be empty when the message carries files."),
    )
    client_id = ClientIdField(
        help_text=_("Optional UUID chosen by the client; resending it returns the same message.")
    )
    reply_to = IdField(help_text=_("Optional: the id of the message (in this room) you answer."))
    attachments = serializers.ListField(
        child=IdField(required=True, allow_null=False),
        required=False,
        default=list,
        max_length=None,
        help_text=_("Optional: ids of files you uploaded to this room (unsent), in order."),
    )


class AttachmentUploadSerializer(serializers.Serializer):
    file = UploadField(help_text=_("The file (multipart/form-data)."))


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
    show_presence = serializers.BooleanField(required=False)
    send_read_receipts = serializers.BooleanField(required=False)
    # A code of settings.LANGUAGES, or "" to follow the browser (Accept-Language); the service
    # (profiles.services.profile_update) judges it, as for the page's language switch.
    language = serializers.ChoiceField(
        choices=[("", "")] + list(settings.LANGUAGES), required=False, allow_blank=True
    )
