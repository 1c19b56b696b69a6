"""Every API error is JSON with a 4xx status, and this module is the one place that maps the
service layer's exceptions to one. Views call a service and let its exception propagate:

| raised by a service (``apps.chat.errors``, Django) | answer |
|---|---|
| ``RoomNotFound``, ``MessageNotFound``, ``MemberNotFound`` | 404 ``{"detail"}`` |
| ``NotAllowed`` (not your message, not the room's owner) | 403 ``{"detail"}`` |
| Django ``ValidationError`` | 400 ``{"<input field>": ["…"]}`` (or ``{"detail"}``) |
| ``RateLimited`` | 429 ``{"detail"}`` with ``Retry-After`` |

The text is ``errors.describe(exc)``, the same words the pages and the websocket use. Which input
field a ``ValidationError`` is about is the view's to say (``error_field``: it knows what it
passed to the service); the service's error code picks among them."""

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers, status
from rest_framework.fields import get_error_detail
from rest_framework.views import exception_handler as drf_exception_handler

from apps.chat import errors
from apps.core.ratelimit import RateLimited

__all__ = ["NON_FIELD", "PayloadTooLarge", "exception_handler"]

# ``error_field`` returns this for an error about the request as a whole (e.g. "this message was
# deleted"): it is answered as ``{"detail": "…"}``, like a 403 or a 404.
NON_FIELD = "detail"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "payload_too_large"


_NOT_FOUND = (
    errors.RoomNotFound,
    errors.MessageNotFound,
    errors.MemberNotFound,
    errors.AttachmentNotFound,
)


def exception_handler(exc, context):
    return drf_exception_handler(api_exception(exc, context.get("view")), context)


def api_exception(exc: Exception, view=None) -> Exception:
    """``exc`` as the DRF exception to answer with (unchanged when DRF already knows it)."""
    if isinstance(exc, SuspiciousOperation):
        # Raised while reading the body (too large, too many fields/files). Django would log it
        # and answer an HTML 400; keep the log, answer JSON.
        logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
        if isinstance(exc, RequestDataTooBig):
            return PayloadTooLarge()
        return exceptions.ParseError(str(exc))
    if isinstance(exc, RateLimited):
        return exceptions.Throttled(wait=exc.retry_after, detail=errors.describe(exc))
    if isinstance(exc, _NOT_FOUND):
        # MemberNotFound is a ValidationError too (the pages' form error): before that branch.
        return exceptions.NotFound(errors.describe(exc))
    if isinstance(exc, errors.NotAllowed):
        return exceptions.PermissionDenied(errors.describe(exc))
    if isinstance(exc, DjangoValidationError):
        return _validation_error(exc, getattr(view, "error_field", None))
    return exc


def _validation_error(exc: DjangoValidationError, error_field) -> serializers.ValidationError:
    """A service's ``ValidationError`` as DRF errors keyed by input field.

    A dict-shaped error keeps its keys. Each error of a plain one goes under
    ``error_field(code)``; without a view to ask, under ``detail``."""
    detail = get_error_detail(exc)
    if isinstance(detail, dict):
        return serializers.ValidationError(detail)
    keyed: dict[str, list] = {}
    for error in detail:
        field = error_field(error.code) if error_field is not None else NON_FIELD
        keyed.setdefault(field, []).append(error)
    if set(keyed) == {NON_FIELD}:
        # The shape of every other {"detail"} answer: one string, not a list.
        return serializers.ValidationError({NON_FIELD: " ".join(keyed[NON_FIELD])})
    return serializers.ValidationError(keyed)
