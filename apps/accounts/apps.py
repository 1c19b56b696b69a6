from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self) -> None:
        # Session-ending triggers (logout, password change, deactivation, deletions).
        from . import sessions  # noqa: F401
