from django.urls import path

from .consumers import RoomConsumer, UserConsumer

websocket_urlpatterns = [
    path("ws/chat/room/<int:pk>/", RoomConsumer.as_asgi()),
    path("ws/user/", UserConsumer.as_asgi()),
]
