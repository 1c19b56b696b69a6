from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self) -> None:
        # Session-ending triggers (logout, password change, deactivation, deletions), and
        # a deleted access token's (tokens: it closes the token's sockets too).
        from . import sessions, tokens  # noqa: F401
