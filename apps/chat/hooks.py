"""``POST /hooks/<secret>/``: an incoming webhook posts a message (apps/chat/webhooks.py).

The secret URL is the credential: no session, no CSRF token (nothing a browser holds is
used), JSON answers only. The body is JSON ``{"text": "…"}`` (Slack's field, so existing tools
work; other Slack fields such as ``username`` are ignored) or a form field ``text``. The body
is capped small by project/http_limits.py (``PARLEY_WEBHOOK_MAX_BYTES``).

Success is 200 ``{"ok": true, "message": <id>}``; every refusal is the API's one error shape
(apps/api/exceptions.py), ``{"error": {"code", "message", "fields"}}``: 405
``method_not_allowed``, 404 ``not_found`` (a wrong or revoked secret), 413
``payload_too_large``, 400 ``parse_error`` (not JSON), 400 with ``fields: {"text": […]}`` for
a missing or refused text (``invalid``, or the service's code: ``required``, ``max_length``…), 429
``throttled`` with ``Retry-After``."""

import json

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from apps.core.ratelimit import RateLimited

from . import errors, webhooks


def _error(status: int, code: str, message: str, fields=None, **headers) -> JsonResponse:
    response = JsonResponse({"error": errors.error_object(code, message, fields)}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _text_error(code: str, messages: list) -> JsonResponse:
    messages = [str(message) for message in messages]
    return _error(400, code, f"text: {messages[0]}", {"text": messages})


def _text_of(request):
    """The posted text (None when the body has none), or raises ValueError for a body that
    is not what it says it is."""
    content_type = (request.content_type or "").lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        data = json.loads(request.body.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError
        return data.get("text")
    return request.POST.get("text")


@csrf_exempt  # the secret in the URL is the credential; no cookie is read
@never_cache
def webhook_incoming(request, secret: str):
    if request.method != "POST":
        response = _error(405, "method_not_allowed", _("Send the message with POST."))
        response["Allow"] = "POST"
        return response
    webhook = webhooks.webhook_lookup(secret)
    if webhook is None:  # before reading the body
        return _error(404, "not_found", _("No such webhook."))
    try:
        text = _text_of(request)
    except RequestDataTooBig:
        return _error(413, "payload_too_large", _("The request body is too large."))
    except (ValueError, UnicodeDecodeError):
        return _error(400, "parse_error", _('The body is not valid JSON: send {"text": "…"}.'))
    except MultiPartParserError:
        return _error(400, "parse_error", _("The form body could not be read."))
    if text is None:
        return _text_error("invalid", [_('Give the message in "text".')])
    try:
        result = webhooks.webhook_post(secret=secret, text=text, webhook=webhook)
    except webhooks.WebhookNotFound as exc:
        return _error(404, "not_found", exc.message)
    except RateLimited as exc:
        return _error(
            429, "throttled", errors.describe(exc), **{"Retry-After": str(exc.retry_after)}
        )
    except ValidationError as exc:
        # Everything refused here is about the one input, the text; a code that only names it
        # is the generic one (as in apps/api/exceptions.py).
        code = errors.code_of(exc)
        return _text_error("invalid" if code == "text" else code, exc.messages)
    return JsonResponse({"ok": True, "message": result.message.pk})
