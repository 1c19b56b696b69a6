from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"

    def ready(self) -> None:
        # Registers the system check that no view still uses DRF's TokenAuthentication.
        from . import authentication  # noqa: F401
