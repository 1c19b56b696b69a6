"""The endpoint browsers POST Content-Security-Policy violation reports to (`report-uri`).

Anyone can post here (reports come from logged-out pages too, and browsers send no CSRF token),
so the body is untrusted and the endpoint must not become a way to flood the log:

- the body is capped at ``PARLEY_CSP_REPORT_MAX_BYTES`` (16 KiB) as it arrives, by
  ``project.http_limits`` in front of Django (which would otherwise read up to the general
  7 MiB cap first), and again here for servers without that middleware;
- each client address (``apps.core.clientaddr.client_key``) may post ``RATE`` reports per
  window; past it the answer is 429 and nothing is logged;
- a request logs at most ``_MAX_LINES_PER_REQUEST`` warning lines (a Reporting API batch may
  hold many violations; the rest are counted on the last line), each with short, single-line
  fields, so a hostile report can neither forge log lines nor write one huge line.

Whatever arrives, the answer is a 204 or a 4xx, never a 500.
"""

import json
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.core import ratelimit
from apps.core.clientaddr import client_key

logger = logging.getLogger("parley.csp")

# Reports per client address per window (count, seconds). A browser sends one report per
# violation per page load; a person browsing a page that breaks the policy stays well under
# it; a script posting in a loop gets 429s and leaves at most 30 × _MAX_LINES_PER_REQUEST
# lines a minute per address.
RATE = (30, 60)

# Fields logged per report: the legacy report-uri format (dashed keys) and the Reporting API
# format (report-to, camelCase keys) name the same things differently.
_FIELDS = {
    "directive": ("effective-directive", "effectiveDirective", "violated-directive"),
    "blocked": ("blocked-uri", "blockedURL"),
    "document": ("document-uri", "documentURL"),
    "source": ("source-file", "sourceFile"),
    "line": ("line-number", "lineNumber"),
    "sample": ("script-sample", "sample"),
    "disposition": ("disposition",),
}
_FIELD_MAX = 200
_MAX_REPORTS_PER_REQUEST = 20  # violations looked at in a Reporting API batch
_MAX_LINES_PER_REQUEST = 3


class BadReport(ValueError):
    """The body is not a CSP report we understand."""


def _clean(value: Any) -> str:
    """One short printable line: report fields end up in log files that people and tools read."""
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= _FIELD_MAX else text[: _FIELD_MAX - 1] + "…"


def _reports(payload: Any) -> Iterator[dict[str, Any]]:
    """The violation bodies in either format: {"csp-report": {...}} (report-uri) or a list of
    {"type": "csp-violation", "body": {...}} (report-to)."""
    if isinstance(payload, dict) and isinstance(payload.get("csp-report"), dict):
        yield payload["csp-report"]
        return
    if isinstance(payload, list) and payload:
        bodies = [
            item["body"]
            for item in payload[:_MAX_REPORTS_PER_REQUEST]
            if isinstance(item, dict)
            and item.get("type") == "csp-violation"
            and isinstance(item.get("body"), dict)
        ]
        if bodies:
            yield from bodies
            return
    raise BadReport("not a CSP violation report")


def _describe(report: dict[str, Any]) -> str:
    parts = []
    for name, keys in _FIELDS.items():
        value = next((report[k] for k in keys if report.get(k) not in (None, "")), None)
        if value is not None:
            parts.append(f"{name}={_clean(value)}")
    return " ".join(parts) or "(no details)"


@csrf_exempt
@require_POST
def csp_report(request: HttpRequest) -> HttpResponse:
    count, window = RATE
    try:
        ratelimit.hit(key=f"csp-report:{client_key(request)}", limit=count, window=window)
    except ratelimit.RateLimited as exc:
        response = HttpResponse("Too many reports.", status=429, content_type="text/plain")
        response["Retry-After"] = str(exc.retry_after)
        return response
    limit = settings.PARLEY_CSP_REPORT_MAX_BYTES
    # Read at most one byte past the cap ourselves instead of trusting Content-Length, which a
    # client may leave out or get wrong.
    body = request.read(limit + 1)
    if len(body) > limit:
        return HttpResponse("Report too large.", status=413, content_type="text/plain")
    try:
        reports = list(_reports(json.loads(body)))
    except (ValueError, RecursionError):  # bad UTF-8 and bad JSON are ValueErrors
        return HttpResponse("Not a CSP report.", status=400, content_type="text/plain")
    shown = reports[:_MAX_LINES_PER_REQUEST]
    for n, report in enumerate(shown, start=1):
        more = len(reports) - len(shown) if n == len(shown) else 0
        suffix = f" (+{more} more in this report)" if more else ""
        logger.warning("CSP violation: %s%s", _describe(report), suffix)
    return HttpResponse(status=204)
