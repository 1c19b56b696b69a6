"""Every API error is JSON with a 4xx status. DRF already does that for its own exceptions and for
Http404/PermissionDenied; this handler adds the exceptions our services raise, so a view that
forgets to catch one still answers properly instead of with a 500."""

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers, status
from rest_framework.fields import get_error_detail
from rest_framework.views import exception_handler as drf_exception_handler

from apps.chat.services import RateLimited, RoomNotFound


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "payload_too_large"


def field_errors(
    exc: DjangoValidationError, field: str, code_fields: dict[str, str] | None = None
) -> serializers.ValidationError:
    """A service's ``ValidationError`` as DRF field errors.

    A dict-shaped error keeps its keys. A plain one is put under ``field`` — or under
    ``code_fields[code]`` when its code says which input it is about (e.g. ``reused`` →
    ``client_id``)."""
    detail = get_error_detail(exc)
    if isinstance(detail, dict):
        return serializers.ValidationError(detail)
    keyed: dict[str, list] = {}
    for error in detail:
        keyed.setdefault((code_fields or {}).get(error.code, field), []).append(error)
    return serializers.ValidationError(keyed)


def exception_handler(exc, context):
    if isinstance(exc, SuspiciousOperation):
        # Raised while reading the body (too large, too many fields/files). Django would log it
        # and answer an HTML 400; keep the log, answer JSON.
        logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
        if isinstance(exc, RequestDataTooBig):
            exc = PayloadTooLarge()
        else:
            exc = exceptions.ParseError(str(exc))
    if isinstance(exc, RateLimited):
        exc = exceptions.Throttled(wait=exc.retry_after, detail=str(_("You are going too fast.")))
    elif isinstance(exc, RoomNotFound):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoValidationError):
        exc = serializers.ValidationError(serializers.as_serializer_error(exc))
    return drf_exception_handler(exc, context)
