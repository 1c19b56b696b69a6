from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self) -> None:
        # Revocations and profile changes → open sockets (realtime's user events).
        from . import signals  # noqa: F401
