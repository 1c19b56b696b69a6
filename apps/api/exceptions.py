"""Every API error answers one shape, and this module is the one place that makes it:

    {"error": {"code": "<machine code>", "message": "<one sentence>", "fields": {"<input>": ["…"]}}}

built with ``apps.chat.errors.error_object`` (the websocket's JSON error frames use it too).
``fields`` is always there: ``{}`` when the error is about the request as a whole.

Views call a service and let its exception propagate; ``api_exception`` maps it to a DRF
exception, DRF's handler adds the headers (``WWW-Authenticate`` on a 401, ``Retry-After`` on a
429), and ``error_body`` writes the body:

- 404 ``not_found``: ``RoomNotFound``, ``MessageNotFound``, ``MemberNotFound``,
  ``AttachmentNotFound``, ``tokens.TokenNotFound``, ``bots.BotNotFound``,
  ``webhooks.WebhookNotFound``, ``Http404``, an unknown ``/api/`` URL;
- 403 ``permission_denied``: ``NotAllowed``, Django's ``PermissionDenied``, a session request
  without its CSRF token;
- 400 with the service's own code (``errors.code_of``: ``required``, ``max_length``,
  ``too_many``, ``deleted``…; the code the websocket's error frame carries): a service's
  ``ValidationError`` raised through a view; ``invalid`` when it has none or when its code
  only names the input it is about (``emoji``, ``q``: ``fields`` says that);
- 400 ``invalid``: input a serializer refuses, or a view's own ``ValidationError``;
- 400 ``parse_error``: malformed JSON, too many form fields, a broken multipart body;
- 401 ``not_authenticated`` / ``authentication_failed``: no credentials / a bad token;
- 405 ``method_not_allowed``; 406 ``not_acceptable``; 415 ``unsupported_media_type``;
- 413 ``payload_too_large``: a body over the limit (``RequestDataTooBig``, a file too big);
- 429 ``throttled``: ``RateLimited`` and DRF's throttles;
- 500 ``server_error``: anything else (a bug), answered by ``server_error`` below.

The ``message`` is ``errors.describe(exc)``, the same words the pages and the websocket use; for
a 400 it is the error about the request as a whole when there is one, else the first refused
input's first message prefixed with its name (``"body: This field is required."``).

``fields`` is flat: an input name → its list of messages. Errors nested in a list or an object
input get dotted keys (``attachments.0``, ``members.2.id``). Which input field a service's
``ValidationError`` is about is the view's to say (``error_field``: it knows what it passed to
the service); the service's error code picks among them; ``NON_FIELD`` means the request as a
whole.

Outside DRF (``project/urls.py``'s ``handler400/403/404/500``, and ``project/http_limits.py``
refusing a body before Django reads it), answers under ``/api/`` and ``/hooks/`` are this same
JSON; everywhere else they stay Django's pages. (With ``DEBUG`` on, Django's technical 500 page
is left alone: it is the development aid, like the browsable API.)"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.fields import get_error_detail
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from apps.accounts import tokens
from apps.chat import errors, webhooks
from apps.core.ratelimit import RateLimited
from apps.profiles import bots

__all__ = [
    "JSON_PREFIXES",
    "NON_FIELD",
    "PayloadTooLarge",
    "api_exception",
    "bad_request",
    "error_body",
    "exception_handler",
    "page_not_found",
    "permission_denied",
    "server_error",
]

# ``error_field`` returns this for an error about the request as a whole (e.g. "this message was
# deleted"): its text is the ``message``, and ``fields`` is ``{}``. DRF's own key for a
# serializer's ``validate()`` errors, so both are read the same way.
NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY

# The machine-facing paths: their errors are JSON, never an HTML page.
JSON_PREFIXES = ("/api/", "/hooks/")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = gettext_lazy("The request body is too large.")
    default_code = "payload_too_large"


class ServiceValidationError(serializers.ValidationError):
    """A service's ``ValidationError`` keyed by input field, remembering the service's code."""

    def __init__(self, detail, code: str):
        super().__init__(detail)
        self.service_code = code


_NOT_FOUND = (
    errors.RoomNotFound,
    errors.MessageNotFound,
    errors.MemberNotFound,
    errors.AttachmentNotFound,
)


def exception_handler(exc, context):
    exc = api_exception(exc, context.get("view"))
    response = drf_exception_handler(exc, context)
    if response is not None:
        # drf_exception_handler made the status and the headers; the body is ours.
        response.data = error_body(exc)
    return response


def api_exception(exc: Exception, view=None) -> Exception:
    """``exc`` as the DRF exception to answer with (unchanged when DRF already knows it)."""
    if isinstance(exc, SuspiciousOperation):
        # Raised while reading the body (too large, too many fields/files). Django would log it
        # and answer an HTML 400; keep the log, answer JSON.
        logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
        if isinstance(exc, RequestDataTooBig):
            return PayloadTooLarge()
        return exceptions.ParseError(str(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, RateLimited):
        throttled = exceptions.Throttled(wait=exc.retry_after)
        # The service's sentence already says when to retry; DRF's would add it a second time.
        throttled.detail = exceptions.ErrorDetail(errors.describe(exc), code="throttled")
        return throttled
    if isinstance(exc, _NOT_FOUND):
        # MemberNotFound is a ValidationError too (the pages' form error): before that branch.
        return exceptions.NotFound(errors.describe(exc))
    if isinstance(exc, (tokens.TokenNotFound, bots.BotNotFound, webhooks.WebhookNotFound)):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, errors.NotAllowed):
        return exceptions.PermissionDenied(errors.describe(exc))
    if isinstance(exc, DjangoValidationError):
        return _validation_error(exc, getattr(view, "error_field", None))
    return exc


def _validation_error(exc: DjangoValidationError, error_field) -> ServiceValidationError:
    """A service's ``ValidationError`` as DRF errors keyed by input field, with its code.

    A dict-shaped error keeps its keys. Each error of a plain one goes under
    ``error_field(code)``; without a view to ask, under ``NON_FIELD``."""
    detail = get_error_detail(exc)
    if not isinstance(detail, dict):
        keyed: dict[str, list] = {}
        for error in detail:
            field = error_field(error.code) if error_field is not None else NON_FIELD
            keyed.setdefault(field, []).append(error)
        detail = keyed
    code = errors.code_of(exc)
    # Some services' codes only say which input (``emoji``, ``q``, ``reply_to``: what
    # ``error_field`` reads): ``fields`` says that already, and the code is the generic one.
    return ServiceValidationError(detail, "invalid" if code in detail else code)


def _flat(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"field": ["…"], "list.0": ["…"], "obj.key": ["…"]}``."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            for name, messages in _flat(value, f"{prefix}.{key}" if prefix else str(key)).items():
                flat.setdefault(name, []).extend(messages)
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix: [str(item) for item in detail]} if detail else {}
        flat = {}
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                for name, messages in _flat(
                    item, f"{prefix}.{index}" if prefix else str(index)
                ).items():
                    flat.setdefault(name, []).extend(messages)
            else:  # a message about the list itself, beside its items' errors
                flat.setdefault(prefix, []).append(str(item))
        return flat
    return {prefix: [str(detail)]}


def _validation_body(exc: serializers.ValidationError) -> dict:
    detail = exc.detail
    if isinstance(detail, list) and all(not isinstance(item, (dict, list)) for item in detail):
        detail = {NON_FIELD: detail}  # plain messages: about the request as a whole
    fields = _flat(detail)  # a list of objects (a many=True input): "0.name", "1.name"…
    whole = fields.pop(NON_FIELD, [])
    if whole:
        message = " ".join(whole)
    elif fields:
        name, messages = next(iter(fields.items()))
        message = f"{name}: {messages[0]}" if name else messages[0]
    else:
        message = _("Invalid input.")
    code = getattr(exc, "service_code", "invalid")
    return {"error": errors.error_object(code, message, fields)}


def error_body(exc: exceptions.APIException) -> dict:
    """The body for a DRF exception (after ``api_exception``)."""
    if isinstance(exc, serializers.ValidationError):
        return _validation_body(exc)
    if isinstance(exc.detail, (dict, list)):  # an APIException given structured detail
        fields = _flat(exc.detail)
        whole = fields.pop(NON_FIELD, []) or fields.pop("", [])
        message = " ".join(whole) or next(iter(fields.values()), [""])[0]
        return {"error": errors.error_object(exc.default_code, message, fields)}
    # The class's code (DRF's vocabulary: not_found, throttled…), whatever a raiser passed.
    return {"error": errors.error_object(exc.default_code, str(exc.detail))}


# --- Django's own error views (project/urls.py: handler400/403/404/500) -------------------
# Under /api/ and /hooks/ the same JSON as above; elsewhere Django's pages, unchanged.


def _json_error(request, status_code: int, code: str, message: str) -> JsonResponse | None:
    if not request.path.startswith(JSON_PREFIXES):
        return None
    return JsonResponse({"error": errors.error_object(code, message)}, status=status_code)


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    return _json_error(
        request, 400, "parse_error", _("The request could not be read.")
    ) or defaults.bad_request(request, exception, template_name)


def permission_denied(request, exception, template_name=defaults.ERROR_403_TEMPLATE_NAME):
    return _json_error(
        request, 403, "permission_denied", _("You are not allowed to do that.")
    ) or defaults.permission_denied(request, exception, template_name)


def page_not_found(request, exception, template_name=defaults.ERROR_404_TEMPLATE_NAME):
    return _json_error(request, 404, "not_found", _("Not found.")) or defaults.page_not_found(
        request, exception, template_name
    )


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    return _json_error(
        request, 500, "server_error", _("Something went wrong on our side. Try again later.")
    ) or defaults.server_error(request, template_name)
