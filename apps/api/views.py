"""The REST API (mounted at /api/). Thin: input serializer → the same service the pages and the
websocket call → output serializer. Every room lookup starts from
``selectors.room_list_for_user`` (built on ``Room.objects.visible_to``), so a room you may not
see answers 404 on every route, exactly like a room that does not exist.

Views do not catch service exceptions: ``exceptions.exception_handler`` maps them, asking the
view's ``error_field(code)`` which input a ``ValidationError`` is about."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, status, viewsets
from rest_framework import serializers as drf_serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from apps.chat import attachments as chat_attachments
from apps.chat import errors, selectors, services
from apps.chat import receipts as chat_receipts
from apps.chat import search as chat_search
from apps.chat.models import Message, Room
from apps.profiles import selectors as profile_selectors
from apps.profiles import services as profile_services
from apps.profiles.models import Profile

from . import examples, serializers
from .exceptions import NON_FIELD, PayloadTooLarge

MESSAGE_PAGE_MAX = 100
MEMBER_MATCH_MAX = 20  # the mention autocomplete's list

# --- OpenAPI (drf-spectacular): what the views below answer, beside their own decorators ------
_ROOM = serializers.RoomSerializer
_MESSAGE = serializers.MessageSerializer
_MESSAGE_PAGE = inline_serializer(
    "MessagePage",
    {
        "results": serializers.MessageSerializer(many=True),
        "older": drf_serializers.URLField(allow_null=True),
        "newer": drf_serializers.URLField(allow_null=True),
    },
)
_SEARCH_PAGE = inline_serializer(
    "SearchPage",
    {
        "results": serializers.SearchResultSerializer(many=True),
        "next": drf_serializers.URLField(allow_null=True),
    },
)


def _created_or_existing(serializer, created: str, existing: str) -> dict:
    return {
        201: OpenApiResponse(serializer, description=created),
        200: OpenApiResponse(serializer, description=existing),
    }


_NO_CONTENT = {204: OpenApiResponse(description="Done: no body.")}


@extend_schema(
    summary="The API's entry points",
    responses=inline_serializer(
        "ApiRoot",
        {
            name: drf_serializers.URLField()
            for name in (
                "rooms",
                "profiles",
                "profiles/me",
                "dm",
                "search",
                "auth/token",
                "tokens",
                "bots",
                "schema",
                "docs",
            )
        },
    ),
)
class ApiRootView(APIView):
    """Parley's API. Authenticate with a session (the browsable API, after logging in) or with
    a personal access token, `Authorization: Bearer <token>` (make one on the API tokens page,
    at `tokens`, or from a username and password at `auth/token`)."""

    permission_classes = [AllowAny]

    def get(self, request):
        def url(name):
            return reverse(f"api:{name}", request=request)

        return Response(
            {
                "rooms": url("room-list"),
                "profiles": url("profile-list"),
                "profiles/me": url("profile-me"),
                "dm": url("dm"),
                "search": url("search"),
                "auth/token": url("auth-token"),
                "tokens": url("token-list"),
                "bots": url("bot-list"),
                "schema": url("schema"),
                "docs": url("docs"),
            }
        )


@extend_schema_view(
    list=extend_schema(
        summary="List the rooms you can see",
        parameters=[
            OpenApiParameter(
                "joined", OpenApiTypes.BOOL, description="1: only the rooms you belong to."
            )
        ],
    ),
    retrieve=extend_schema(summary="Show a room"),
    create=extend_schema(
        summary="Create a room",
        request=serializers.RoomCreateSerializer,
        responses={201: _ROOM},
        examples=[
            OpenApiExample("A public room", value={"name": "general"}, request_only=True),
            OpenApiExample(
                "A private group",
                value={"name": "ops", "private": True, "members": ["alice"], "topic": "On call"},
                request_only=True,
            ),
            examples.example("The new room", {**examples.ROOM, "role": "owner"}),
        ],
    ),
    partial_update=extend_schema(
        summary="Rename a room or set its topic (owners)",
        request=serializers.RoomUpdateSerializer,
        responses=_ROOM,
    ),
    destroy=extend_schema(summary="Delete a room (owners)", responses=_NO_CONTENT),
)
class RoomViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Rooms you can see: every public room, your private groups and your 1:1 conversations.
    `?joined=1`: only the rooms you belong to (your sidebar).

    POST `{"name": "…"}` creates a public room; `{"name": "…", "private": true, "members":
    ["username", …], "topic": "…"}` a private group (invite-only). Either way you become its
    owner. PATCH `{"name", "topic"}` renames it or sets its topic, DELETE deletes it: the
    room's owners only (403 otherwise; a 1:1 conversation cannot be renamed or deleted)."""

    lookup_value_regex = r"\d+"

    # The service's ValidationError code → the input it is about, per action.
    _ERROR_FIELDS = {
        "create": ({"members": "members", "private": "private", "topic": "topic"}, "name"),
        "partial_update": ({"topic": "topic", "room_mentions": "room_mentions"}, "name"),
        "members": ({}, "username"),
        "read": ({"force": "force"}, "seq"),
        "membership": ({}, "notify"),
        "messages": (
            {"reused": "client_id", "reply_to": "reply_to", "attachments": "attachments"},
            "body",
        ),
    }

    def error_field(self, code: str) -> str:
        fields, default = self._ERROR_FIELDS.get(self.action, ({}, NON_FIELD))
        return fields.get(code, default)

    def get_object(self):
        # A hidden room and a missing one: the same RoomNotFound answer as every message route.
        try:
            return super().get_object()
        except Http404:
            raise errors.RoomNotFound from None

    def get_queryset(self):
        rooms = selectors.room_list_for_user(user=self.request.user)
        if self.action in ("list", "retrieve"):
            # Your membership and the member count: subqueries in the rooms' own query.
            rooms = selectors.with_membership(rooms, user=self.request.user)
        if self.action == "list":
            if _flag_param(self.request, "joined"):
                rooms = rooms.filter(is_member=True)
            # 1:1 rooms are titled by the other participant: one query for the whole page.
            rooms = selectors.with_dm_members(rooms)
        return rooms

    def get_serializer_class(self):
        # By the request's method, not self.action: OPTIONS describes POST with a cloned request.
        action = self.action_map.get(self.request.method.lower(), self.action)
        method = self.request.method
        if action == "create":
            return serializers.RoomCreateSerializer
        if action == "partial_update":
            return serializers.RoomUpdateSerializer
        if action == "messages":
            if method == "POST":
                return serializers.MessageCreateSerializer
            return serializers.MessageSerializer
        if action == "members":
            if method == "POST":
                return serializers.MemberAddSerializer
            return serializers.MemberSerializer
        if action == "read":
            return serializers.ReadSerializer
        if action == "membership":
            return serializers.MembershipUpdateSerializer
        if action == "receipts":
            return serializers.ReceiptSerializer
        return serializers.RoomSerializer

    def options(self, request, *args, **kwargs):
        if self.detail:
            self.get_object()  # a room you cannot see has no options either: 404
        return super().options(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        rooms = self.paginate_queryset(self.get_queryset())
        body = serializers.RoomSerializer(rooms, many=True, context=self._context_for(rooms))
        return self.get_paginated_response(body.data)

    def retrieve(self, request, *args, **kwargs):
        room = self.get_object()
        body = serializers.RoomSerializer(room, context=self._context_for([room]))
        return Response(body.data)

    def _context_for(self, rooms) -> dict:
        """The serializer context with your read state of ``rooms``: one query, however many."""
        states = selectors.unread_states(
            user_id=self.request.user.pk, room_ids=[room.pk for room in rooms]
        )
        return {**self.get_serializer_context(), "unread": states}

    def _room_answer(self, pk, status_code=status.HTTP_200_OK, headers=None) -> Response:
        """The room as it is now (after a change), as GET shows it. (Deleted or hidden from
        you since, by someone else's change: 404, as it would be for the next request.)"""
        rooms = selectors.room_list_for_user(user=self.request.user)
        room = selectors.with_membership(rooms, user=self.request.user).filter(pk=pk).first()
        if room is None:
            raise errors.RoomNotFound
        body = serializers.RoomSerializer(room, context=self._context_for([room]))
        return Response(body.data, status=status_code, headers=headers)

    def create(self, request, *args, **kwargs):
        data = _validated(self, serializers.RoomCreateSerializer)
        room = services.room_create(
            name=data["name"],
            creator=request.user,
            private=data["private"],
            members=data["members"],
            topic=data["topic"],
        )
        url = reverse("api:room-detail", kwargs={"pk": room.pk}, request=request)
        return self._room_answer(room.pk, status.HTTP_201_CREATED, {"Location": url})

    def partial_update(self, request, *args, **kwargs):
        room = self.get_object()
        data = _validated(self, serializers.RoomUpdateSerializer)
        services.room_update(room=room, user=request.user, **data)
        return self._room_answer(room.pk)

    def destroy(self, request, *args, **kwargs):
        room = self.get_object()
        services.room_delete(room=room, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Join a public room",
        request=None,
        responses=_created_or_existing(_ROOM, "You joined.", "You already were a member."),
    )
    @action(detail=True, methods=["post"])
    def join(self, request, pk=None):
        """Join a public room: 201 with the room when you just joined, 200 when you already
        were a member. (A private group is invite-only: you are in it already, or it does not
        exist for you.)"""
        room = self.get_object()
        _membership, created = services.room_join(room=room, user=request.user)
        return self._room_answer(
            room.pk, status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(summary="Leave a room", request=None, responses=_NO_CONTENT)
    @action(detail=True, methods=["post"])
    def leave(self, request, pk=None):
        """Leave the room (204, also when you were not a member). A private group you leave is
        gone for you; its last member leaving deletes it. A 1:1 conversation cannot be left
        (403)."""
        room = self.get_object()
        services.room_leave(room=room, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        summary="List a room's members",
        parameters=[
            OpenApiParameter("q", str, description="Username or display name starts with this.")
        ],
        responses=serializers.MemberSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        summary="Add a member to a private group (owners)",
        request=serializers.MemberAddSerializer,
        responses=_created_or_existing(
            serializers.MemberSerializer, "Added.", "They already were a member."
        ),
        operation_id="rooms_members_add",
    )
    @action(detail=True, pagination_class=None, methods=["get", "post"])
    def members(self, request, pk=None):
        """The room's members, owners first: `[{"id", "username", "display_name", "name",
        "avatar", "role"}]`. `?q=` keeps those whose username or display name starts with it
        (ignoring case), at most 20 (the mention autocomplete).

        POST `{"username": "…"}` adds someone to a private group (its owners only): 201 with
        the new member, 200 with the member when they already were one."""
        room = self.get_object()
        if request.method == "POST":
            data = _validated(self, serializers.MemberAddSerializer)
            membership, created = services.member_add(
                room=room, user=request.user, username=data["username"]
            )
            body = serializers.MemberSerializer(membership, context=self.get_serializer_context())
            answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
            return Response(body.data, status=answer)
        query = request.query_params.get("q")
        limit = MEMBER_MATCH_MAX if query is not None else None
        members = selectors.room_members(room=room, query=query, limit=limit)
        body = serializers.MemberSerializer(
            members, many=True, context=self.get_serializer_context()
        )
        return Response(body.data)

    @extend_schema(
        summary="Move your read pointer",
        request=serializers.ReadSerializer,
        responses=serializers.UnreadStateSerializer,
        examples=[
            OpenApiExample("Read up to seq 42", value={"seq": 42}, request_only=True),
            examples.example("Your read state", examples.UNREAD),
        ],
    )
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        """Move your read pointer: POST `{"seq": N}` marks everything up to seq N read (never
        moving it back; past the newest message it stops there). With `"force": true` it also
        moves back: everything after N is unread again ("mark as unread from here"). Answers
        your read state: `{"room", "last_read_seq", "unread_count", "mention_count"}`. Rooms you
        have not joined have no pointer (403)."""
        room = self.get_object()
        data = _validated(self, serializers.ReadSerializer)
        state = services.room_mark_read(
            room=room, user=request.user, seq=data["seq"], force=data["force"]
        )
        return Response(serializers.UnreadStateSerializer(state).data)

    @extend_schema(
        summary="List a room's read receipts",
        responses=serializers.ReceiptSerializer(many=True),
    )
    @action(detail=True, pagination_class=None, methods=["get"])
    def receipts(self, request, pk=None):
        """Read receipts: `[{"user": <id>, "last_read_seq": N}]`, by user id — how far each
        member who sends read receipts has read (you too, when you send them). Only in rooms
        of at most 10 members (every DM): in a larger room, and for you when your own "Send
        read receipts" is off (you see nobody's), the list is empty. A room you may not see:
        404."""
        room = self.get_object()
        pairs = chat_receipts.room_receipts(room=room, viewer=request.user)
        rows = [{"user": user_id, "last_read_seq": seq} for user_id, seq in pairs]
        return Response(serializers.ReceiptSerializer(rows, many=True).data)

    @extend_schema(
        summary="Set what notifies you in a room",
        request=serializers.MembershipUpdateSerializer,
        responses=_ROOM,
    )
    @action(detail=True, methods=["patch"])
    def membership(self, request, pk=None):
        """PATCH `{"notify": "all" | "mentions" | "none"}`: what notifies you in this room
        (`none` mutes it). 200 with the room; 403 when you are not a member."""
        room = self.get_object()
        data = _validated(self, serializers.MembershipUpdateSerializer)
        services.membership_set_notify(room=room, user=request.user, notify=data["notify"])
        return self._room_answer(room.pk)

    @extend_schema(
        methods=["GET"],
        summary="List a room's messages (a page, or the changes after a version)",
        operation_id="rooms_messages_list",
        parameters=[
            OpenApiParameter("before", int, description="The page just older than this seq."),
            OpenApiParameter(
                "after", int, description="Every message created or changed after this version."
            ),
            OpenApiParameter(
                "around",
                int,
                description="The page centred on the message at this seq (a search result).",
            ),
            OpenApiParameter("limit", int, description="1 to 100 (default 50)."),
        ],
        responses=_MESSAGE_PAGE,
        examples=[
            examples.example(
                "An older page",
                {
                    "results": [examples.MESSAGE],
                    "older": "https://chat.example.org/api/rooms/1/messages/?before=17",
                    "newer": "https://chat.example.org/api/rooms/1/messages/?after=17",
                },
            )
        ],
    )
    @extend_schema(
        methods=["POST"],
        summary="Send a message",
        operation_id="rooms_messages_send",
        request=serializers.MessageCreateSerializer,
        responses=_created_or_existing(
            _MESSAGE, "Sent.", "That client_id was already sent: the original message."
        ),
        examples=[
            OpenApiExample(
                "A message",
                value={
                    "body": "Hello **world**",
                    "client_id": "3f2b8c1e-0d4a-4e6b-9a7c-5e1f2a3b4c5d",
                },
                request_only=True,
            ),
            examples.example("The message sent", examples.MESSAGE),
        ],
    )
    @action(detail=True, methods=["get", "post"])
    def messages(self, request, pk=None):
        """A room's messages, oldest → newest within a page (keyset pagination).

        GET without parameters: the newest page; `?before=<seq>`: the page just older than
        that seq; `?around=<seq>`: the page centred on that message (what a search result or
        a notification opens; the newest page when no message is at or after that seq).
        `?after=<version>`: every message created *or changed* (edited, deleted, reacted to)
        after that version, in version order, tombstones included: how an API
        client syncs (keep the highest `version` you have seen, ask `?after=` it, replace
        messages by `id`). `?limit=` 1–100 (default 50). The answer is `{"results": [...],
        "older": url|null, "newer": url|null}`: follow `older` to scroll back, `newer` to
        move forward (null once you are up to date). Pages never shift when messages arrive,
        and each costs the same few queries.

        POST `{"body": "…", "client_id": "<uuid, optional>", "reply_to": <message id,
        optional>, "attachments": [<ids of your unsent uploads here>, optional]}` sends a
        message as you (with files, `body` may be empty). 201 with the new message; 200 with
        the original message when that `client_id` was already sent (a safe retry)."""
        room = self.get_object()
        if request.method == "POST":
            return self._message_send(room)
        return self._message_page(room)

    def _message_page(self, room) -> Response:
        before = _seq_param(self.request, "before")
        after = _seq_param(self.request, "after")
        around = _seq_param(self.request, "around")
        if sum(value is not None for value in (before, after, around)) > 1:
            raise ValidationError({NON_FIELD: _("Use one of before, after and around.")})
        limit = _limit_param(self.request)
        url = self.request.build_absolute_uri()
        for name in ("before", "after", "around"):
            url = remove_query_param(url, name)
        # room.last_seq was read (get_object) before the page: a newer link is never missed.
        older = newer = None
        found = None
        if around is not None:
            half = (limit - 1) // 2
            found = selectors.message_list_around(
                room=room, seq=around, before=half, after=limit - 1 - half
            )
        if found is not None:
            page = found.messages
            if page[0].seq > 1:
                older = replace_query_param(url, "before", page[0].seq)
            if page[-1].seq < room.last_seq:
                newer = replace_query_param(url, "after", page[-1].seq)
        elif after is not None:
            # The sync feed, by version: a message appears once, in its current state.
            page = selectors.message_changes_after(room=room, after=after, limit=limit)
            if page and page[-1].version < room.last_seq:
                newer = replace_query_param(url, "after", page[-1].version)
        else:
            if before is not None:
                page = selectors.message_list_before(room=room, before_seq=before, limit=limit)
            else:
                page = selectors.message_list_latest(room=room, limit=limit)
            # A room's first event is its first message, so seq 1 is the oldest one.
            if page and page[0].seq > 1:
                older = replace_query_param(url, "before", page[0].seq)
            # Every message newer than this page, and every change since, has version > its
            # last seq. The newest page needs no link: it is the present.
            if before is not None and page and page[-1].seq < room.last_seq:
                newer = replace_query_param(url, "after", page[-1].seq)
        results = serializers.MessageSerializer(
            page, many=True, context=self.get_serializer_context()
        )
        return Response({"results": results.data, "older": older, "newer": newer})

    def _message_send(self, room) -> Response:
        data = _validated(self, serializers.MessageCreateSerializer)
        result = services.message_send(
            room=room,
            author=self.request.user,
            body=data["body"],
            client_id=data.get("client_id"),
            reply_to=data.get("reply_to"),
            attachments=data.get("attachments") or None,
        )
        message = _message_get(room, result.message.pk)
        body = serializers.MessageSerializer(message, context=self.get_serializer_context())
        return Response(
            body.data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )


class _MessageView(GenericAPIView):
    """Base of the routes under ``/api/rooms/<room_pk>/messages/<pk>/``: the room must be one
    you can see and the message one of its messages, else 404 (OPTIONS too)."""

    def options(self, request, *args, **kwargs):
        _message_get(_room_get(request, kwargs["room_pk"]), kwargs["pk"])
        return super().options(request, *args, **kwargs)

    def _answer(self, room, pk, status_code=status.HTTP_200_OK) -> Response:
        message = _message_get(room, pk)
        body = serializers.MessageSerializer(message, context=self.get_serializer_context())
        return Response(body.data, status=status_code)


@extend_schema_view(
    get=extend_schema(summary="Show a message", operation_id="messages_retrieve"),
    patch=extend_schema(
        summary="Edit your message",
        operation_id="messages_edit",
        request=serializers.MessageEditSerializer,
        responses=_MESSAGE,
    ),
    delete=extend_schema(
        summary="Delete a message", operation_id="messages_delete", responses=_NO_CONTENT
    ),
)
class MessageDetailView(_MessageView):
    """One message of a room you can see.

    PATCH `{"body": "…"}` edits your message (200 with it; someone else's: 403). DELETE
    deletes it (204): yours, or anyone's in a room you own; a tombstone (`deleted` true) stays
    in its place. Both reach every open websocket of the room at once."""

    def get_serializer_class(self):
        if self.request.method == "PATCH":
            return serializers.MessageEditSerializer
        return serializers.MessageSerializer

    def error_field(self, code: str) -> str:
        return NON_FIELD if code == "deleted" else "body"

    def get(self, request, room_pk, pk):
        room = _room_get(request, room_pk)
        return self._answer(room, pk)

    def patch(self, request, room_pk, pk):
        room = _room_get(request, room_pk)
        data = _validated(self, serializers.MessageEditSerializer)
        services.message_edit(room=room, user=request.user, message_id=pk, body=data["body"])
        return self._answer(room, pk)

    def delete(self, request, room_pk, pk):
        room = _room_get(request, room_pk)
        services.message_delete(room=room, user=request.user, message_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    post=extend_schema(
        summary="React to a message",
        operation_id="reactions_add",
        request=serializers.ReactionCreateSerializer,
        responses=_created_or_existing(_MESSAGE, "Reacted.", "You had already reacted so."),
        examples=[
            OpenApiExample("Thumbs up", value={"emoji": "👍"}, request_only=True),
            examples.example("The message with your reaction", examples.MESSAGE),
        ],
    )
)
class ReactionListView(_MessageView):
    """POST `{"emoji": "👍"}` reacts to the message: 201 with the message, or 200 when you had
    already reacted with that emoji (nothing changes). Only emoji from the app's list."""

    serializer_class = serializers.ReactionCreateSerializer

    def error_field(self, code: str) -> str:
        return "emoji" if code == "emoji" else NON_FIELD

    def post(self, request, room_pk, pk):
        room = _room_get(request, room_pk)
        data = _validated(self, serializers.ReactionCreateSerializer)
        result = services.reaction_add(
            room=room, user=request.user, message_id=pk, emoji=data["emoji"]
        )
        return self._answer(
            room, pk, status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )


@extend_schema_view(
    delete=extend_schema(
        summary="Take your reaction back",
        operation_id="reactions_remove",
        responses={
            **_NO_CONTENT,
            400: OpenApiResponse(description="Not a reaction anyone can use (`emoji`)."),
        },
    )
)
class ReactionDetailView(_MessageView):
    """DELETE takes your reaction back (the emoji URL-encoded in the path): 204; 404 when you
    had not reacted with it."""

    def error_field(self, code: str) -> str:
        return "emoji" if code == "emoji" else NON_FIELD

    def delete(self, request, room_pk, pk, emoji):
        room = _room_get(request, room_pk)
        result = services.reaction_remove(room=room, user=request.user, message_id=pk, emoji=emoji)
        if result.change is None:
            raise NotFound(_("You have not reacted with %(emoji)s.") % {"emoji": emoji})
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    post=extend_schema(
        summary="Upload a file to send",
        operation_id="attachments_upload",
        request={"multipart/form-data": serializers.AttachmentUploadSerializer},
        responses={201: serializers.AttachmentSerializer},
    )
)
class AttachmentListView(GenericAPIView):
    """POST a file (multipart/form-data, field `file`) to a room you may post in: 201 with
    `{"id", "name", "size", "content_type", "kind", "width", "height", "url",
    "thumbnail_url"}`. It stays yours alone until you send it (`attachments` of a message
    POST); unsent, it is deleted after a day. Images (JPEG, PNG, WebP, GIF, judged by their
    content) are re-encoded without metadata and get a thumbnail; anything else is stored
    as it is and served as a download. Over the size limit: 413."""

    serializer_class = serializers.AttachmentUploadSerializer

    def error_field(self, code: str) -> str:
        return "file"

    def options(self, request, *args, **kwargs):
        _room_get(request, kwargs["room_pk"])
        return super().options(request, *args, **kwargs)

    def post(self, request, room_pk):
        room = _room_get(request, room_pk)
        data = _validated(self, serializers.AttachmentUploadSerializer)
        try:
            attachment = chat_attachments.attachment_upload(
                room=room, user=request.user, upload=data["file"]
            )
        except DjangoValidationError as exc:
            if any(error.code == "file_size" for error in exc.error_list):
                raise PayloadTooLarge(errors.describe(exc)) from None
            raise
        body = serializers.AttachmentSerializer(attachment, context=self.get_serializer_context())
        return Response(body.data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    delete=extend_schema(
        summary="Discard your unsent upload",
        operation_id="attachments_discard",
        responses=_NO_CONTENT,
    )
)
class AttachmentDetailView(GenericAPIView):
    """DELETE removes your unsent upload (204); someone else's, a sent one or none: 404."""

    serializer_class = serializers.AttachmentSerializer

    def error_field(self, code: str) -> str:
        return NON_FIELD

    def options(self, request, *args, **kwargs):
        _room_get(request, kwargs["room_pk"])
        return super().options(request, *args, **kwargs)

    def delete(self, request, room_pk, pk):
        room = _room_get(request, room_pk)
        chat_attachments.attachment_discard(room=room, user=request.user, attachment_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    delete=extend_schema(
        summary="Remove a member from a private group (owners)",
        operation_id="rooms_members_remove",
        responses=_NO_CONTENT,
    )
)
class MemberDetailView(GenericAPIView):
    """DELETE removes that member (by user id) from a private group: its owners only (403
    otherwise), 204; 404 when that person is not a member. To leave a room yourself, POST to
    its `leave/`."""

    serializer_class = serializers.MemberSerializer

    def error_field(self, code: str) -> str:
        return NON_FIELD

    def options(self, request, *args, **kwargs):
        _room_get(request, kwargs["room_pk"])
        return super().options(request, *args, **kwargs)

    def delete(self, request, room_pk, user_id):
        room = _room_get(request, room_pk)
        services.member_remove(room=room, user=request.user, member_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _flag_param(request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValidationError({name: [_("Must be 1 or 0.")]})


def _room_get(request, pk) -> Room:
    try:
        return selectors.room_get_for_user(user=request.user, pk=pk)
    except Room.DoesNotExist:
        raise errors.RoomNotFound from None


def _message_get(room: Room, pk) -> Message:
    message = selectors.with_timeline(Message.objects.filter(room=room, pk=pk)).first()
    if message is None:
        raise errors.MessageNotFound
    return message


def _validated(view, serializer_class) -> dict:
    serializer = serializer_class(data=view.request.data, context=view.get_serializer_context())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _seq_param(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return errors.parse_seq(raw)
    except (DjangoValidationError, ValueError, TypeError):
        raise ValidationError({name: [_("Must be a whole number, 0 or more.")]}) from None


def _limit_param(request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return settings.PARLEY_HISTORY_PAGE_SIZE
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MESSAGE_PAGE_MAX:
        raise ValidationError(
            {"limit": [_("Must be a whole number from 1 to %(max)d.") % {"max": MESSAGE_PAGE_MAX}]}
        )
    return value


@extend_schema_view(
    get=extend_schema(
        summary="Search messages",
        parameters=[
            OpenApiParameter("q", str, description="The query.", required=True),
            OpenApiParameter("room", int, description="Only this room."),
            OpenApiParameter("before", str, description="The next page's cursor."),
        ],
        responses={
            200: _SEARCH_PAGE,
            404: OpenApiResponse(description="`room` is not a room you can see."),
        },
        examples=[
            examples.example(
                "One hit, more to come",
                {
                    "results": [examples.SEARCH_RESULT],
                    "next": "https://chat.example.org/api/search/?q=icons&before=42",
                },
            )
        ],
    )
)
class SearchView(GenericAPIView):
    """Search the messages of every room you can see: GET `?q=…` (words, "quoted phrases",
    `from:username`, `in:room-name`, `has:file`; every part must match, ignoring case, inside
    words too), `room=<id>` to search one room (404 if you cannot see it), `before=<cursor>`
    for the next page. Newest first: `{"results": [{"id", "room", "seq", "author",
    "created_at", "snippet", "highlights", "url"}], "next": url|null}`. A bad query: 400
    `{"q": ["…"]}`."""

    serializer_class = serializers.SearchResultSerializer

    def error_field(self, code: str) -> str:
        return code if code in ("q", "before") else NON_FIELD

    def get(self, request):
        room = request.query_params.get("room")
        room_id = None
        if room is not None:
            if not (room.isascii() and room.isdigit() and 0 < len(room) <= 19):
                raise ValidationError({"room": [_("Must be a room id.")]})
            room_id = int(room)
        page = chat_search.search_messages(
            user=request.user,
            q=request.query_params.get("q", ""),
            room_id=room_id,
            before=request.query_params.get("before") or None,
        )
        results = serializers.SearchResultSerializer(
            page.results, many=True, context=self.get_serializer_context()
        )
        following = None
        if page.next_cursor is not None:
            following = replace_query_param(
                request.build_absolute_uri(), "before", page.next_cursor
            )
        return Response({"results": results.data, "next": following})


@extend_schema_view(
    list=extend_schema(summary="List people"),
    retrieve=extend_schema(summary="Show someone's profile"),
)
class ProfileViewSet(viewsets.ReadOnlyModelViewSet):
    """People: every active user's profile. `id` is the user id.

    `me` shows your own profile; PATCH it with `display_name` and/or `avatar` (a multipart file
    upload), or `remove_avatar=true`; `language` (`en`, `ru`, or `""` to follow the browser's
    Accept-Language) is the language of your pages. Fields you leave out stay unchanged."""

    serializer_class = serializers.ProfileSerializer
    lookup_field = "user_id"
    lookup_url_kwarg = "pk"
    lookup_value_regex = r"\d+"

    def error_field(self, code: str) -> str:
        return "display_name"

    def get_queryset(self):
        return profile_selectors.profile_list()

    def get_serializer_class(self):
        action = self.action_map.get(self.request.method.lower(), self.action)
        if action == "me" and self.request.method == "PATCH":
            return serializers.ProfileUpdateSerializer
        return serializers.ProfileSerializer

    @extend_schema(
        methods=["GET"], summary="Show your profile", responses=serializers.MyProfileSerializer
    )
    @extend_schema(
        methods=["PATCH"],
        summary="Edit your profile",
        request={
            "application/json": serializers.ProfileUpdateSerializer,
            "multipart/form-data": serializers.ProfileUpdateSerializer,
        },
        responses=serializers.MyProfileSerializer,
    )
    @action(detail=False, methods=["get", "patch"])
    def me(self, request):
        profile, _created = Profile.objects.select_related("user").get_or_create(user=request.user)
        if request.method == "PATCH":
            update = serializers.ProfileUpdateSerializer(data=request.data, partial=True)
            update.is_valid(raise_exception=True)
            profile = profile_services.profile_update(profile=profile, **update.validated_data)
        body = serializers.MyProfileSerializer(profile, context=self.get_serializer_context())
        return Response(body.data)


@extend_schema_view(
    post=extend_schema(
        summary="Open a direct conversation",
        responses={
            **_created_or_existing(_ROOM, "Created.", "It already existed."),
            404: OpenApiResponse(description="No active user has that username."),
        },
        examples=[
            OpenApiExample("With alice", value={"username": "alice"}, request_only=True),
            examples.example("The conversation", examples.DM_ROOM),
        ],
    )
)
class DirectMessageView(GenericAPIView):
    """Open the private conversation with another person: POST `{"username": "…"}`.

    201 with the room when it was just created, 200 when it already existed."""

    serializer_class = serializers.DirectMessageSerializer

    def error_field(self, code: str) -> str:
        return "username"

    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        other = _active_user_by_username(serializer.validated_data["username"])
        if other is None:
            raise NotFound(_("No such user."))
        room, created = services.dm_get_or_create(user=request.user, other=other)
        body = serializers.RoomSerializer(room, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _active_user_by_username(username: str):
    """Usernames are unique ignoring case at sign-up; an exact match still wins if two accounts
    (e.g. made by an admin) differ only in case."""
    exact_first = Case(
        When(username=username, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return (
        get_user_model()
        .objects.filter(username__iexact=username, is_active=True)
        .order_by(exact_first, "pk")
        .first()
    )


class NotFoundView(APIView):
    """Any other path under /api/: a JSON 404 (not Django's HTML page), for every method."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        detail = _("Not found.")
        path = request.path_info
        if not path.endswith("/"):
            try:
                match = resolve(path + "/")
            except Resolver404:
                match = None
            if match is not None and match.url_name != "not-found":
                detail = _("Not found. Did you mean %(path)s?") % {"path": path + "/"}
        raise NotFound(detail)
