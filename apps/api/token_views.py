"""Personal access tokens over the API (issue 13): ``/api/tokens/`` and ``/api/auth/token/``.

The same services as the "API tokens" page (apps/accounts/tokens.py). A token's secret is in
exactly one answer: the 201 (or 200 for ``auth/token``) that made it."""

from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.fields import CharField
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import login_limits, tokens
from apps.accounts.models import AccessToken

from . import examples
from .exceptions import NON_FIELD, api_exception
from .serializers import IdField, TextField
from .throttles import TokenAddressThrottle

DEFAULT_NAME = "API token"


class _TokenErrors:
    """The service's ValidationError codes → the input they are about."""

    def error_field(self, code: str) -> str:
        if code == "expires_at":
            return "expires_at"
        if code == "too_many":
            return NON_FIELD
        return "name"


@extend_schema_serializer(examples=[examples.example("A token", examples.TOKEN)])
class TokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its secret (the database does not have it)."""

    class Meta:
        model = AccessToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    """``name``, and at most one of ``expires_at`` (ISO 8601) and ``expires_in_days``; neither:
    the token never expires. What is an acceptable name or expiry is the service's call."""

    name = TextField()
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    expires_in_days = IdField(
        required=False, max_value=tokens.EXPIRY_DAYS_MAX, help_text=gettext_lazy("1 to 3650.")
    )

    def validate(self, attrs):
        at, days = attrs.get("expires_at"), attrs.get("expires_in_days")
        if at is not None and days is not None:
            raise ValidationError(
                {"expires_in_days": [_("Give expires_at or expires_in_days, not both.")]}
            )
        attrs["expires_at"] = tokens.expiry_in_days(days) if days is not None else at
        attrs.pop("expires_in_days", None)
        return attrs


class TokenOptionsSerializer(TokenCreateSerializer):
    """``auth/token``'s optional ``name`` ("API token") and expiry, checked before the
    password is (a bad option costs no login attempt)."""

    name = TextField(required=False, default=DEFAULT_NAME)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        try:
            tokens.token_clean(name=attrs["name"], expires_at=attrs["expires_at"])
        except DjangoValidationError as exc:
            raise api_exception(exc, _TokenErrors()) from None
        return attrs


class CredentialsSerializer(serializers.Serializer):
    """``username`` and ``password``, checked by the view under the login limits."""

    username = CharField(write_only=True)
    password = CharField(write_only=True, trim_whitespace=False, style={"input_type": "password"})

    def validate(self, attrs):
        user = authenticate(
            request=self.context.get("request"),
            username=attrs["username"],
            password=attrs["password"],
        )
        # None for a wrong password and for an inactive user (ModelBackend) alike; a bot
        # gets tokens from its owner, never for a password.
        profile = getattr(user, "profile", None) if user is not None else None
        if user is None or (profile is not None and profile.is_bot):
            raise ValidationError(
                {NON_FIELD: _("Unable to log in with provided credentials.")}, code="authorization"
            )
        attrs["user"] = user
        return attrs


class TokenCreatedSerializer(TokenSerializer):
    """A token just made: with its secret, ``token``, in this one answer."""

    token = CharField(read_only=True, help_text=gettext_lazy("The secret: shown this once."))

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


_CREATE_EXAMPLE = OpenApiExample(
    "A token for 90 days", value={"name": "deploy bot", "expires_in_days": 90}, request_only=True
)
_CREATED_EXAMPLE = examples.example(
    "The new token (its secret this once)",
    {**examples.TOKEN, "token": "pat_Xk3v9QaB" + "q" * 38},
)


def _created(token: AccessToken, secret: str) -> dict:
    return {**TokenSerializer(token).data, "token": secret}


@extend_schema_view(
    get=extend_schema(
        summary="List your tokens",
        operation_id="tokens_list",
        responses=TokenSerializer(many=True),
    ),
    post=extend_schema(
        summary="Create a token",
        operation_id="tokens_create",
        request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer},
        examples=[_CREATE_EXAMPLE, _CREATED_EXAMPLE],
    ),
)
class TokenListView(_TokenErrors, GenericAPIView):
    """Your personal access tokens. GET lists them (newest first; never the secret). POST
    `{"name": "…", "expires_in_days": 90}` (or `"expires_at": "2027-01-01T00:00:00Z"`, or
    neither: it never expires) makes one: 201 with its secret in `token`, shown this once.
    Send it as `Authorization: Bearer <token>`."""

    serializer_class = TokenSerializer

    def get_serializer_class(self):
        if self.request.method == "POST":
            return TokenCreateSerializer
        return TokenSerializer

    def get_queryset(self):
        return tokens.token_list_for_user(user=self.request.user)

    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(TokenSerializer(page, many=True).data)

    def post(self, request):
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, secret = tokens.token_create(user=request.user, **serializer.validated_data)
        return Response(_created(token, secret), status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="Show a token", operation_id="tokens_retrieve"),
    delete=extend_schema(
        summary="Revoke a token",
        operation_id="tokens_revoke",
        responses={204: OpenApiResponse(description="Revoked.")},
    ),
)
class TokenDetailView(GenericAPIView):
    """One of your tokens: GET shows it, DELETE revokes it (204; its open websockets close).
    Another user's token is 404, like one that does not exist."""

    serializer_class = TokenSerializer

    def get(self, request, pk: int):
        token = tokens.token_get_for_user(user=request.user, token_id=pk)
        return Response(TokenSerializer(token).data)

    def delete(self, request, pk: int):
        tokens.token_revoke(user=request.user, token_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    post=extend_schema(
        summary="Get a new token with a username and password",
        operation_id="auth_token_create",
        request=inline_serializer(
            "AuthTokenRequest",
            {
                "username": CharField(),
                "password": CharField(),
                "name": CharField(required=False, default=DEFAULT_NAME),
                "expires_at": serializers.DateTimeField(required=False, allow_null=True),
                "expires_in_days": serializers.IntegerField(
                    required=False, min_value=1, max_value=tokens.EXPIRY_DAYS_MAX
                ),
            },
        ),
        responses={200: TokenCreatedSerializer},
        examples=[
            OpenApiExample(
                "A script's token",
                value={"username": "alice", "password": "…", "name": "backup script"},
                request_only=True,
            ),
            _CREATED_EXAMPLE,
        ],
    ),
    delete=extend_schema(
        summary="Revoke the token of this request",
        operation_id="auth_token_revoke",
        request=None,
        responses={
            204: OpenApiResponse(description="Revoked."),
            400: OpenApiResponse(description="Not authenticated by a token (a session)."),
        },
    ),
)
class AuthTokenView(_TokenErrors, APIView):
    """For scripts: POST `username` and `password` (and optionally `name`, default "API token",
    and `expires_in_days` or `expires_at`) → 200 with a **new** token, `{"token": "…", "id",
    "name", "prefix", …}`; send it as `Authorization: Bearer …`. Each call makes another token
    (list and revoke them at `/api/tokens/` or on the API tokens page).

    DELETE revokes the token that authenticates the request (204); the others stay (revoke
    those by id). A DELETE authenticated by a session has no such token: 400.

    Requests are throttled per client address (the `token` rate); failed passwords count
    against that address and username as on the HTML login (`apps.accounts.login_limits`):
    an address that keeps failing is refused (429 with Retry-After) for that username, while
    the owner signing in from elsewhere is not."""

    throttle_classes = [TokenAddressThrottle]
    throttle_scope = "token"
    serializer_class = CredentialsSerializer

    def get_authenticators(self):
        # Getting a token proves identity with the password in the body alone: a stale
        # Authorization header or a session cookie must not change the outcome.
        # (The schema generator asks before it sets a request: describe the POST then.)
        if self.request is None or self.request.method == "POST":
            return []
        return super().get_authenticators()

    def get_permissions(self):
        if self.request is None or self.request.method == "POST":
            return [AllowAny()]
        return [IsAuthenticated()]

    def get_serializer(self, *args, **kwargs):  # for the browsable API's form
        kwargs.setdefault("context", {"request": self.request})
        return self.serializer_class(*args, **kwargs)

    def post(self, request):
        options = TokenOptionsSerializer(data=request.data)
        options.is_valid(raise_exception=True)  # 400: no password checked
        serializer = self.get_serializer(data=request.data)
        username = _token_username(request.data)
        if username is None:
            serializer.is_valid(raise_exception=True)  # 400: no password checked
        try:
            user = login_limits.authenticate_counted(
                request=request,
                username=username,
                check=lambda: serializer.validated_data["user"] if serializer.is_valid() else None,
            )
        except login_limits.RateLimited as exc:
            raise Throttled(wait=exc.retry_after) from None
        if user is None:
            raise ValidationError(serializer.errors)
        token, secret = tokens.token_create(user=user, **options.validated_data)
        return Response(_created(token, secret))

    def delete(self, request):
        token = request.auth
        if not isinstance(token, AccessToken):
            raise ValidationError(
                {
                    NON_FIELD: _(
                        "This request was not authenticated by a token: revoke tokens by id "
                        "(DELETE /api/tokens/<id>/)."
                    )
                }
            )
        tokens.token_revoke(user=request.user, token_id=token.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _token_username(data) -> str | None:
    """The username a token request will check a password for, read as the serializer reads it
    (``123`` is the username "123"), or None when no password will be checked."""
    if not hasattr(data, "get") or data.get("password") in (None, ""):
        return None
    try:
        username = CharField().run_validation(data.get("username"))
    except ValidationError:
        return None
    return username or None
