"""``POST /hooks/<secret>/``: an incoming webhook posts a message (apps/chat/webhooks.py).

The secret URL is the credential: no session, no CSRF token (nothing a browser holds is
used), JSON answers only. The body is JSON ``{"text": "…"}`` (Slack's field, so existing tools
work; other Slack fields such as ``username`` are ignored) or a form field ``text``. The body
is capped small by project/http_limits.py (``PARLEY_WEBHOOK_MAX_BYTES``)."""

import json

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from apps.core.ratelimit import RateLimited

from . import errors, webhooks


def _error(status: int, message: str, **headers) -> JsonResponse:
    response = JsonResponse({"ok": False, "error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


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
        response = _error(405, _("Send the message with POST."))
        response["Allow"] = "POST"
        return response
    webhook = webhooks.webhook_lookup(secret)
    if webhook is None:  # before reading the body
        return _error(404, _("No such webhook."))
    try:
        text = _text_of(request)
    except RequestDataTooBig:
        return _error(413, _("The request body is too large."))
    except (ValueError, UnicodeDecodeError):
        return _error(400, _('The body is not valid JSON: send {"text": "…"}.'))
    if text is None:
        return _error(400, _('Give the message in "text".'))
    try:
        result = webhooks.webhook_post(secret=secret, text=text, webhook=webhook)
    except webhooks.WebhookNotFound as exc:
        return _error(404, exc.message)
    except RateLimited as exc:
        return _error(429, errors.describe(exc), **{"Retry-After": str(exc.retry_after)})
    except ValidationError as exc:
        return _error(400, errors.describe(exc))
    return JsonResponse({"ok": True, "message": result.message.pk})
