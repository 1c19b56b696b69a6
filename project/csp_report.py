"""The endpoint browsers POST Content-Security-Policy violation reports to (`report-uri`).

Anyone can post here (reports come from logged-out pages too, and browsers send no CSRF token),
so the body is untrusted: it is read up to a cap, parsed as JSON, and each report becomes one
warning line with short, single-line fields, so a hostile report can neither forge log lines
nor flood the log with one huge line. Whatever arrives, the answer is a 204 or a 4xx, never a 500.
"""

import json
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

logger = logging.getLogger("parley.csp")

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
_MAX_REPORTS_PER_REQUEST = 20


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
    for report in reports:
        logger.warning("CSP violation: %s", _describe(report))
    return HttpResponse(status=204)
