"""Logging filters.

A client that sends a foreign ``Host``, invalid UTF-8 or a malformed body has made a 4xx
mistake, not hit a bug in Parley, yet Django logs several of these with a full traceback:
``django.security.<Exception>`` at ERROR for every ``SuspiciousOperation`` (DisallowedHost
included), ``django.request`` at WARNING with the traceback for ``UnicodeDecodeError``,
``BadRequest``, ``MultiPartParserError`` and ``PermissionDenied``. Anyone can then fill the log
with tracebacks and trip ERROR alerts. ``ClientErrorFilter`` keeps the one-line message and
drops the rest. It must sit on the logger that emits the record (settings.LOGGING lists them):
a logger's filters do not see records propagated from its children, and the test suite's
``caplog`` handler hangs on the root logger."""

import logging


class ClientErrorFilter(logging.Filter):
    """A record about a response with a 4xx status: at most WARNING, no traceback.
    Records without a status (or 5xx) pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
            if record.levelno > logging.WARNING:
                record.levelno = logging.WARNING
                record.levelname = logging.getLevelName(logging.WARNING)
        return True
