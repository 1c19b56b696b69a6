from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"

    def ready(self) -> None:
        # The system check that no view still uses DRF's TokenAuthentication, and the OpenAPI
        # extension that describes the token authentication (apps/api/schema.py).
        from . import authentication, schema  # noqa: F401
