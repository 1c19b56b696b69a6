from django.urls import path, re_path, register_converter
from rest_framework.routers import SimpleRouter

from apps.api import docs

from . import bot_views, token_views, views


class ObjectIdConverter:
    """A primary key in the URL: 1 … 2**63-1 (BigAutoField). Anything larger matches no route,
    so it is the same JSON 404 as an id that does not exist."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number < 2**63:
            raise ValueError(value)
        return number

    def to_url(self, value) -> str:
        return str(value)


register_converter(ObjectIdConverter, "object_id")

app_name = "api"

router = SimpleRouter()
router.register("rooms", views.RoomViewSet, basename="room")
router.register("profiles", views.ProfileViewSet, basename="profile")

MESSAGE = "rooms/<object_id:room_pk>/messages/<object_id:pk>/"

urlpatterns = [
    path("", views.ApiRootView.as_view(), name="root"),
    *router.urls,
    path(MESSAGE, views.MessageDetailView.as_view(), name="message-detail"),
    path(f"{MESSAGE}reactions/", views.ReactionListView.as_view(), name="message-reactions"),
    # <str:> is one path segment, percent-decoded: /reactions/%F0%9F%91%8D/ is 👍.
    path(
        f"{MESSAGE}reactions/<str:emoji>/",
        views.ReactionDetailView.as_view(),
        name="message-reaction",
    ),
    path(
        "rooms/<object_id:room_pk>/members/<object_id:user_id>/",
        views.MemberDetailView.as_view(),
        name="room-member",
    ),
    path(
        "rooms/<object_id:room_pk>/attachments/",
        views.AttachmentListView.as_view(),
        name="room-attachments",
    ),
    path(
        "rooms/<object_id:room_pk>/attachments/<object_id:pk>/",
        views.AttachmentDetailView.as_view(),
        name="room-attachment",
    ),
    path("dm/", views.DirectMessageView.as_view(), name="dm"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("auth/token/", token_views.AuthTokenView.as_view(), name="auth-token"),
    path("tokens/", token_views.TokenListView.as_view(), name="token-list"),
    path("tokens/<object_id:pk>/", token_views.TokenDetailView.as_view(), name="token-detail"),
    # The OpenAPI schema and its two readers, public (apps/api/docs.py).
    path("schema/", docs.SchemaView.as_view(), name="schema"),
    path("docs/", docs.SwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", docs.RedocView.as_view(url_name="api:schema"), name="redoc"),
    path("bots/", bot_views.BotListView.as_view(), name="bot-list"),
    path("bots/<object_id:pk>/", bot_views.BotDetailView.as_view(), name="bot-detail"),
    path("bots/<object_id:pk>/tokens/", bot_views.BotTokenListView.as_view(), name="bot-tokens"),
    path(
        "bots/<object_id:pk>/tokens/<object_id:token_id>/",
        bot_views.BotTokenDetailView.as_view(),
        name="bot-token",
    ),
    path(
        "rooms/<object_id:room_pk>/webhooks/",
        bot_views.WebhookListView.as_view(),
        name="room-webhooks",
    ),
    path(
        "rooms/<object_id:room_pk>/webhooks/<object_id:pk>/",
        bot_views.WebhookDetailView.as_view(),
        name="room-webhook",
    ),
    # Last: anything else under /api/ is a JSON 404, not Django's HTML page. [\s\S]: a path
    # with a newline in it (%0A) too, which "." does not match.
    re_path(r"^[\s\S]*$", views.NotFoundView.as_view(), name="not-found"),
]
