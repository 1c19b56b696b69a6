"""Bots and incoming webhooks over the API (issue 13).

``/api/bots/``: your bots (apps/profiles/bots.py); another user's bot is 404.
``/api/rooms/<id>/webhooks/``: a room's webhooks (apps/chat/webhooks.py), for its owners only;
everyone else gets 404, like a room they cannot see. A bot token's and a webhook's secret are
each in exactly one answer: the 201 that made them."""

from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from apps.accounts import tokens
from apps.chat import webhooks
from apps.chat.models import Room, Webhook
from apps.profiles import bots

from . import examples
from .exceptions import NON_FIELD
from .serializers import PersonSerializer, TextField, UploadField
from .token_views import (
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenSerializer,
    _created,
    _TokenErrors,
)

_GONE = {204: OpenApiResponse(description="Deleted.")}

AVATAR_CODES = {"empty", "file_size", "dimensions", "invalid_image"}


@extend_schema_serializer(examples=[examples.example("A bot", examples.BOT)])
class BotSerializer(PersonSerializer):
    """A bot: a person-like object (``id`` is its user id) with its ``created_at``."""

    created_at = serializers.DateTimeField(source="user.date_joined", read_only=True)

    class Meta(PersonSerializer.Meta):
        fields = [*PersonSerializer.Meta.fields, "created_at"]
        read_only_fields = fields


class BotCreateSerializer(serializers.Serializer):
    name = TextField()
    username = TextField(required=False, allow_null=True)
    avatar = UploadField(required=False)


class BotUpdateSerializer(serializers.Serializer):
    name = TextField(required=False)
    avatar = UploadField(required=False)
    remove_avatar = serializers.BooleanField(required=False)


class _BotErrors:
    def error_field(self, code: str) -> str:
        if code == "username":
            return "username"
        if code == "too_many":
            return NON_FIELD
        if code in AVATAR_CODES:
            return "avatar"
        return "name"


def _bot(request, pk):
    """The caller's bot (BotNotFound, a 404 from the API's exception handler, otherwise)."""
    return bots.bot_get_for_user(user=request.user, bot_id=pk)


@extend_schema_view(
    get=extend_schema(
        summary="List your bots", operation_id="bots_list", responses=BotSerializer(many=True)
    ),
    post=extend_schema(
        summary="Create a bot",
        operation_id="bots_create",
        request=BotCreateSerializer,
        responses={201: BotSerializer},
    ),
)
class BotListView(_BotErrors, GenericAPIView):
    """Your bots. GET lists them (oldest first). POST `{"name": "Deploy"}` (optionally
    `"username"`, and an `avatar` file in a multipart form) makes one: 201. Bots cannot log
    in with a password; give one a token with `POST /api/bots/<id>/tokens/`."""

    serializer_class = BotSerializer

    def get_serializer_class(self):
        return BotCreateSerializer if self.request.method == "POST" else BotSerializer

    def get_queryset(self):
        return bots.bot_list_for_user(user=self.request.user)

    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        body = BotSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(body.data)

    def post(self, request):
        data = BotCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = bots.bot_create(
            owner=request.user,
            name=data.validated_data["name"],
            username=data.validated_data.get("username"),
            avatar=data.validated_data.get("avatar"),
        )
        body = BotSerializer(profile, context=self.get_serializer_context())
        return Response(body.data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Show a bot", operation_id="bots_retrieve"),
    patch=extend_schema(
        summary="Change a bot's name or avatar",
        operation_id="bots_update",
        request=BotUpdateSerializer,
        responses=BotSerializer,
    ),
    delete=extend_schema(summary="Delete a bot", operation_id="bots_delete", responses=_GONE),
)
class BotDetailView(_BotErrors, GenericAPIView):
    """One of your bots: GET, PATCH (`name`, `avatar`, `remove_avatar`), DELETE (204: its
    tokens, webhooks and messages go). Someone else's bot is 404."""

    serializer_class = BotSerializer

    def get(self, request, pk: int):
        body = BotSerializer(_bot(request, pk), context=self.get_serializer_context())
        return Response(body.data)

    def patch(self, request, pk: int):
        _bot(request, pk)
        data = BotUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        profile = bots.bot_update(user=request.user, bot_id=pk, **data.validated_data)
        return Response(BotSerializer(profile, context=self.get_serializer_context()).data)

    def delete(self, request, pk: int):
        bots.bot_delete(user=request.user, bot_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    get=extend_schema(
        summary="List a bot's tokens",
        operation_id="bots_tokens_list",
        responses=TokenSerializer(many=True),
    ),
    post=extend_schema(
        summary="Create a token for a bot",
        operation_id="bots_tokens_create",
        request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer},
    ),
)
class BotTokenListView(_TokenErrors, GenericAPIView):
    """The bot's tokens: GET lists them; POST `{"name": "…", "expires_in_days": 90}` makes
    one: 201 with its secret in `token`, shown this once."""

    serializer_class = TokenSerializer

    def get(self, request, pk: int):
        profile = _bot(request, pk)
        page = self.paginate_queryset(tokens.token_list_for_user(user=profile.user))
        return self.get_paginated_response(TokenSerializer(page, many=True).data)

    def post(self, request, pk: int):
        _bot(request, pk)
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = bots.bot_token_create(user=request.user, bot_id=pk, **data.validated_data)
        return Response(_created(token, secret), status=status.HTTP_201_CREATED)


@extend_schema_view(
    delete=extend_schema(
        summary="Revoke a bot's token", operation_id="bots_tokens_revoke", responses=_GONE
    ),
)
class BotTokenDetailView(GenericAPIView):
    """DELETE revokes one of the bot's tokens (204; its open websockets close)."""

    serializer_class = TokenSerializer

    def delete(self, request, pk: int, token_id: int):
        bots.bot_token_revoke(user=request.user, bot_id=pk, token_id=token_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- incoming webhooks ------------------------------------------------------------------------
@extend_schema_serializer(examples=[examples.example("A webhook", examples.WEBHOOK)])
class WebhookSerializer(serializers.ModelSerializer):
    """A webhook as listed: its URL's first characters (`prefix`), never the secret."""

    bot = PersonSerializer(source="bot.profile", read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "name", "prefix", "bot", "created_at", "last_used_at"]
        read_only_fields = fields


class WebhookCreateSerializer(serializers.Serializer):
    name = TextField()


class WebhookCreatedSerializer(WebhookSerializer):
    """The 201 that made a webhook: the only answer carrying its secret and URL."""

    secret = serializers.CharField(read_only=True)
    url = serializers.URLField(read_only=True)

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret", "url"]
        read_only_fields = fields


def _room(room_pk) -> Room:
    """The room the URL names (RoomNotFound: 404 if none). Whether the caller manages it is the
    webhook service's check (``Room.objects.managed_by``): a member who does not own it gets
    the same 404 as a stranger."""
    room = Room.objects.filter(pk=room_pk).first()
    if room is None:
        raise webhooks.RoomNotFound
    return room


@extend_schema_view(
    get=extend_schema(
        summary="List a room's webhooks",
        operation_id="rooms_webhooks_list",
        responses=WebhookSerializer(many=True),
    ),
    post=extend_schema(
        summary="Create an incoming webhook",
        operation_id="rooms_webhooks_create",
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer},
    ),
)
class WebhookListView(GenericAPIView):
    """The room's incoming webhooks (owners only; 404 otherwise). POST `{"name": "Deploys"}`
    makes one: 201 with its secret `url` (and `secret`), shown this once. `POST <url>` with
    `{"text": "…"}` then posts as the webhook's bot."""

    serializer_class = WebhookSerializer

    def error_field(self, code: str) -> str:
        return NON_FIELD if code == "too_many" else "name"

    def get(self, request, room_pk: int):
        room = _room(room_pk)
        listed = webhooks.webhook_list_for_room(room=room, user=request.user)
        page = self.paginate_queryset(listed)
        body = WebhookSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(body.data)

    def post(self, request, room_pk: int):
        room = _room(room_pk)
        data = WebhookCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook, secret = webhooks.webhook_create(
            room=room, user=request.user, name=data.validated_data["name"]
        )
        path = reverse("webhook_incoming", kwargs={"secret": secret})
        body = {
            **WebhookSerializer(webhook, context=self.get_serializer_context()).data,
            "secret": secret,
            "url": request.build_absolute_uri(path),
        }
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema_view(
    delete=extend_schema(
        summary="Revoke a webhook", operation_id="rooms_webhooks_revoke", responses=_GONE
    ),
)
class WebhookDetailView(GenericAPIView):
    """DELETE revokes the webhook (204): its URL answers 404 from now on."""

    serializer_class = WebhookSerializer

    def delete(self, request, room_pk: int, pk: int):
        room = _room(room_pk)
        webhooks.webhook_revoke(room=room, user=request.user, webhook_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
