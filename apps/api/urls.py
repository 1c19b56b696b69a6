from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "api"

router = SimpleRouter()
router.register("rooms", views.RoomViewSet, basename="room")
router.register("profiles", views.ProfileViewSet, basename="profile")

urlpatterns = [
    path("", views.ApiRootView.as_view(), name="root"),
    *router.urls,
    path("dm/", views.DirectMessageView.as_view(), name="dm"),
    path("auth/token/", views.AuthTokenView.as_view(), name="auth-token"),
    # Last: anything else under /api/ is a JSON 404, not Django's HTML page.
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
