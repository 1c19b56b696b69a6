from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/", views.room_list, name="room_list"),
    path("rooms/create/", views.room_create, name="room_create"),
    path("chat/room/<int:pk>/", views.room_detail, name="room_detail"),
    path("chat/room/<int:pk>/history/", views.room_history, name="room_history"),
    path("chat/room/<int:pk>/send/", views.message_send, name="message_send"),
    path("chat/dm/<int:user_id>/", views.dm_open, name="dm_open"),
]
