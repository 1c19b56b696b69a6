"""A cap on HTTP request bodies, enforced as the bytes arrive.

Django's ASGI handler reads the *whole* body into a spooled temporary file before any view or
middleware runs; ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is only checked later, when the view parses
it. A client that sends no Content-Length (chunked) or keeps sending could fill memory and
then the disk. This middleware sits in front of Django:

- a declared ``Content-Length`` over the cap → 413 at once, nothing read, Django not called;
- a body whose bytes pass the cap (chunked, or more than declared) → reading stops, Django
  sees a client disconnect (it then drops the request), the client gets 413 and the
  connection is closed; the application never receives more than the cap;
- more bytes than the declared ``Content-Length`` (within the cap) → 400: a server would
  never pass that on, so the length lied.

The cap is ``settings.PARLEY_HTTP_MAX_BODY`` (env ``PARLEY_HTTP_MAX_BODY``); the CSP report
endpoint (``PARLEY_CSP_REPORT_URI``), anonymous and CSRF-exempt, gets the much smaller
``PARLEY_CSP_REPORT_MAX_BYTES``, so a hostile "report" costs no more than 16 KiB to receive;
the attachment upload route (``POST /api/rooms/<id>/attachments/``) gets
``PARLEY_ATTACHMENT_MAX_BYTES`` + 64 KiB (the file plus its multipart framing), which may be
larger than the default; incoming webhooks (``/hooks/<secret>/``) get
``PARLEY_WEBHOOK_MAX_BYTES`` (64 KiB). All are read per request so tests can change them.
Under ``/api/`` and ``/hooks/`` the refusals are the API's one error shape
(``{"error": {"code": "payload_too_large" | "parse_error", "message", "fields": {}}}``, see
apps/api/exceptions.py) like every other error there."""

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DISCONNECT: Message = {"type": "http.disconnect"}
# The one route that takes large bodies (apps/api/urls.py: room-attachments).
_ATTACHMENT_UPLOAD = re.compile(r"^/api/rooms/[0-9]{1,19}/attachments/?$")
MULTIPART_FRAMING = 64 * 1024
# Incoming webhooks (apps/chat/hooks.py): anonymous, a small JSON body.
_WEBHOOK = re.compile(r"^/hooks/[^/]+/?$")


def _declared_length(scope: Scope) -> int | None | bool:
    """The Content-Length as an int, None when absent, False when unusable."""
    headers = scope.get("headers", [])
    values = [value for name, value in headers if name.lower() == b"content-length"]
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].strip().isdigit():
        return False
    return int(values[0])


def _path(scope: Scope) -> str:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


async def _reply(send: Send, status: int, text: str, scope: Scope | None = None) -> None:
    content_type = b"text/plain; charset=utf-8"
    if scope is not None and _path(scope).startswith(("/api/", "/hooks/")):
        from apps.chat.errors import (
            error_object,
        )  # not at import: the app registry may not be ready

        code = "payload_too_large" if status == 413 else "parse_error"
        text = json.dumps({"error": error_object(code, text.strip())})
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(text.encode())).encode()),
                # The rest of the body is never read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


def _cap(scope: Scope, default: int) -> int:
    """The body cap for this request's path."""
    path = _path(scope)
    # With or without the trailing slash: nothing else lives at that path either.
    if path.rstrip("/") == settings.PARLEY_CSP_REPORT_URI.rstrip("/"):
        return min(default, settings.PARLEY_CSP_REPORT_MAX_BYTES)
    if scope.get("method") == "POST" and _ATTACHMENT_UPLOAD.match(path):
        return settings.PARLEY_ATTACHMENT_MAX_BYTES + MULTIPART_FRAMING
    if _WEBHOOK.match(path):
        return min(default, settings.PARLEY_WEBHOOK_MAX_BYTES)
    return default


def _too_large_text(scope: Scope) -> str:
    """What a 413 says: on the upload route, the file limit people can act on."""
    if scope.get("method") == "POST" and _ATTACHMENT_UPLOAD.match(_path(scope)):
        megabytes = settings.PARLEY_ATTACHMENT_MAX_BYTES / (1024 * 1024)
        return f"The file is too big: at most {megabytes:.1f} MB.\n"
    return "Request body too large.\n"


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body: int | None = None) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = _cap(
            scope, self.max_body if self.max_body is not None else settings.PARLEY_HTTP_MAX_BODY
        )
        declared = _declared_length(scope)
        if declared is False:
            await _reply(send, 400, "Invalid Content-Length.\n", scope)
            return
        too_large = _too_large_text(scope)
        if declared is not None and declared > cap:
            await _reply(send, 413, too_large, scope)
            return

        received = 0
        refused: tuple[int, str] | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused is not None:
                return _DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refused = (413, too_large)
                elif declared is not None and received > declared:
                    refused = (400, "The body is longer than its Content-Length.\n")
                if refused is not None:
                    return _DISCONNECT  # the app stops reading and drops the request
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, tracked_send)
        if refused is not None and not started:
            await _reply(send, *refused, scope)
