"""The REST API (mounted at /api/). Thin: input serializer → the same service the pages and the
websocket call → output serializer. Every room lookup starts from
``selectors.room_list_for_user`` (built on ``Room.objects.visible_to``), so a room you may not
see answers 404 on every route, exactly like a room that does not exist."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Case, IntegerField, Value, When
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, Throttled, ValidationError
from rest_framework.fields import CharField
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from apps.accounts import login_limits
from apps.chat import selectors, services
from apps.profiles import selectors as profile_selectors
from apps.profiles import services as profile_services
from apps.profiles.models import Profile

from . import serializers
from .exceptions import field_errors
from .throttles import TokenAddressThrottle

MESSAGE_PAGE_MAX = 100
SEQ_MAX = 2**63 - 1  # BigIntegerField


class ApiRootView(APIView):
    """Parley's API. Authenticate with a session (the browsable API, after logging in) or with
    `Authorization: Token <key>` (get a key from `auth/token`)."""

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
                "auth/token": url("auth-token"),
            }
        )


class RoomViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Rooms you can see: every public room and your private conversations.

    POST `{"name": "…"}` creates a public room (you become its owner)."""

    lookup_value_regex = r"\d+"

    def get_queryset(self):
        rooms = selectors.room_list_for_user(user=self.request.user)
        if self.action == "list":
            # Private rooms are titled by the other participant: one query for the whole page.
            rooms = selectors.with_private_members(rooms)
        return rooms

    def get_serializer_class(self):
        # By the request's method, not self.action: OPTIONS describes POST with a cloned request.
        action = self.action_map.get(self.request.method.lower(), self.action)
        if action == "create":
            return serializers.RoomCreateSerializer
        if action == "messages":
            if self.request.method == "POST":
                return serializers.MessageCreateSerializer
            return serializers.MessageSerializer
        return serializers.RoomSerializer

    def options(self, request, *args, **kwargs):
        if self.detail:
            self.get_object()  # a room you cannot see has no options either: 404
        return super().options(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        data = self._validated(serializers.RoomCreateSerializer)
        try:
            room = services.room_create(name=data["name"], creator=request.user)
        except DjangoValidationError as exc:
            raise field_errors(exc, "name") from None
        body = serializers.RoomSerializer(room, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})

    @action(detail=True, methods=["get", "post"])
    def messages(self, request, pk=None):
        """A room's messages, oldest → newest within a page (keyset pagination on `seq`).

        GET without parameters: the newest page. `?before=<seq>`: the page just older than that
        seq; `?after=<seq>`: the messages just newer (catch-up). `?limit=` 1–100 (default 50).
        The answer is `{"results": [...], "older": url|null, "newer": url|null}`: follow
        `older` to scroll back, `newer` to move forward (null once you are at the newest).
        Pages never shift when new messages arrive, and each costs the same few queries.

        POST `{"body": "…", "client_id": "<uuid, optional>"}` sends a message as you. 201 with
        the new message; 200 with the original message when that `client_id` was already sent
        (a safe retry)."""
        room = self.get_object()
        if request.method == "POST":
            return self._message_send(room)
        return self._message_page(room)

    def _message_page(self, room) -> Response:
        before = _seq_param(self.request, "before")
        after = _seq_param(self.request, "after")
        if before is not None and after is not None:
            raise ValidationError({"detail": _("Use either before or after, not both.")})
        limit = _limit_param(self.request)
        if after is not None:
            page = selectors.message_list_after(room=room, after_seq=after, limit=limit)
        elif before is not None:
            page = selectors.message_list_before(room=room, before_seq=before, limit=limit)
        else:
            page = selectors.message_list_latest(room=room, limit=limit)
        # Seqs are gap-free from 1, so the page's ends say whether anything lies beyond them.
        url = remove_query_param(
            remove_query_param(self.request.build_absolute_uri(), "before"), "after"
        )
        older = (
            replace_query_param(url, "before", page[0].seq) if page and page[0].seq > 1 else None
        )
        newer = (
            replace_query_param(url, "after", page[-1].seq)
            if page and page[-1].seq < room.last_seq
            else None
        )
        results = serializers.MessageSerializer(
            page, many=True, context=self.get_serializer_context()
        )
        return Response({"results": results.data, "older": older, "newer": newer})

    def _message_send(self, room) -> Response:
        data = self._validated(serializers.MessageCreateSerializer)
        try:
            result = services.message_send(
                room=room,
                author=self.request.user,
                body=data["body"],
                client_id=data.get("client_id"),
            )
        except DjangoValidationError as exc:
            raise field_errors(exc, "body", {"reused": "client_id"}) from None
        body = serializers.MessageSerializer(result.message, context=self.get_serializer_context())
        return Response(
            body.data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )

    def _validated(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _seq_param(request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= SEQ_MAX:
        raise ValidationError({name: [_("Must be a whole number, 0 or more.")]})
    return value


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


class ProfileViewSet(viewsets.ReadOnlyModelViewSet):
    """People: every active user's profile. `id` is the user id.

    `me` shows your own profile; PATCH it with `display_name` and/or `avatar` (a multipart file
    upload), or `remove_avatar=true`. Fields you leave out stay unchanged."""

    serializer_class = serializers.ProfileSerializer
    lookup_field = "user_id"
    lookup_url_kwarg = "pk"
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return profile_selectors.profile_list()

    def get_serializer_class(self):
        action = self.action_map.get(self.request.method.lower(), self.action)
        if action == "me" and self.request.method == "PATCH":
            return serializers.ProfileUpdateSerializer
        return serializers.ProfileSerializer

    @action(detail=False, methods=["get", "patch"])
    def me(self, request):
        profile, _created = Profile.objects.select_related("user").get_or_create(user=request.user)
        if request.method == "PATCH":
            update = serializers.ProfileUpdateSerializer(data=request.data, partial=True)
            update.is_valid(raise_exception=True)
            try:
                profile = profile_services.profile_update(profile=profile, **update.validated_data)
            except DjangoValidationError as exc:
                raise field_errors(exc, "display_name") from None
        body = serializers.ProfileSerializer(profile, context=self.get_serializer_context())
        return Response(body.data)


class DirectMessageView(GenericAPIView):
    """Open the private conversation with another person: POST `{"username": "…"}`.

    201 with the room when it was just created, 200 when it already existed."""

    serializer_class = serializers.DirectMessageSerializer

    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        other = _active_user_by_username(serializer.validated_data["username"])
        if other is None:
            raise NotFound(_("No such user."))
        try:
            room, created = services.dm_get_or_create(user=request.user, other=other)
        except DjangoValidationError as exc:
            raise field_errors(exc, "username") from None
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


class AuthTokenView(APIView):
    """POST `username` and `password` → `{"token": "…"}`; send it as `Authorization: Token …`.
    The same key is returned until it is revoked. DELETE (authenticated) revokes your key.

    Requests are throttled per client address (the `token` rate); failed passwords count
    against that address and username as on the HTML login (`apps.accounts.login_limits`):
    an address that keeps failing is refused (429 with Retry-After) for that username, while
    the owner signing in from elsewhere is not."""

    throttle_classes = [TokenAddressThrottle]
    throttle_scope = "token"
    serializer_class = AuthTokenSerializer

    def get_authenticators(self):
        # Getting a token proves identity with the password in the body alone: a stale
        # Authorization header or a session cookie must not change the outcome.
        if self.request.method == "POST":
            return []
        return super().get_authenticators()

    def get_permissions(self):
        if self.request.method == "POST":
            return [AllowAny()]
        return [IsAuthenticated()]

    def get_serializer(self, *args, **kwargs):  # for the browsable API's form
        return self.serializer_class(*args, context={"request": self.request}, **kwargs)

    def post(self, request):
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
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
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
