from django.urls import path

from . import files, views

app_name = "chat"

ROOM = "chat/room/<int:pk>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/", views.room_list, name="room_list"),
    path("rooms/create/", views.room_create, name="room_create"),
    path("sidebar/", views.sidebar, name="sidebar"),
    path("search/", views.search, name="search"),
    path(ROOM, views.room_detail, name="room_detail"),
    path(f"{ROOM}history/", views.room_history, name="room_history"),
    path(f"{ROOM}send/", views.message_send, name="message_send"),
    path(f"{ROOM}join/", views.room_join, name="room_join"),
    path(f"{ROOM}leave/", views.room_leave, name="room_leave"),
    path(f"{ROOM}notify/", views.room_notify, name="room_notify"),
    path(f"{ROOM}read/", views.room_read, name="room_read"),
    path(f"{ROOM}settings/", views.room_settings, name="room_settings"),
    path(f"{ROOM}members/", views.member_add, name="member_add"),
    path(f"{ROOM}members/<int:user_id>/remove/", views.member_remove, name="member_remove"),
    path(f"{ROOM}delete/", views.room_delete, name="room_delete"),
    path(f"{ROOM}webhooks/", views.webhook_create, name="webhook_create"),
    path(f"{ROOM}webhooks/<int:webhook_id>/revoke/", views.webhook_revoke, name="webhook_revoke"),
    path("chat/dm/<int:user_id>/", views.dm_open, name="dm_open"),
    # Attachments (apps/chat/files.py). Before the name route: "thumbnail" is no file name
    # there (the name route needs its own segment after the id).
    path("files/<int:pk>/thumbnail/", files.file_thumbnail, name="file_thumbnail"),
    path("files/<int:pk>/<str:name>", files.file_original, name="file"),
]
