"""Serving attachments: ``/files/<id>/<name>`` (the stored original) and
``/files/<id>/thumbnail/`` (an image's WebP thumbnail).

Who may fetch one is the room's rule: a sent file is visible to whoever
``Room.objects.visible_to`` lets see its room; an unsent upload to its uploader only. Anyone
else — an outsider of a private room, an anonymous client, a wrong id — gets the same 404,
so a file's existence leaks no more than its room's. Browsers authenticate with the session,
API clients with ``Authorization: Token <key>`` (DRF's TokenAuthentication).

Every answer is ``Content-Security-Policy: sandbox`` (django-csp's middleware only sets its
policy when the response has none) and ``X-Content-Type-Options: nosniff``; a non-image is a
download (``Content-Disposition: attachment``, RFC 5987 ``filename*`` for non-ASCII names),
an image inline. ``PARLEY_SENDFILE=nginx`` hands the bytes to nginx (``X-Accel-Redirect`` to
``PARLEY_SENDFILE_PREFIX`` + the stored name, an ``internal`` location: README)."""

from urllib.parse import quote

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.http import FileResponse, Http404, HttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from .models import Attachment, Room

__all__ = ["file_original", "file_thumbnail", "visible_attachments"]

SANDBOX = "sandbox"


def _user(request):
    """The session's user, else a valid ``Authorization: Token`` (a bad token is anonymous:
    the answer is the same 404)."""
    if request.user.is_authenticated:
        return request.user
    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return found[0] if found else None


def visible_attachments(user):
    """The attachments ``user`` may fetch: sent in a room they may see, or their own unsent
    uploads."""
    if user is None or not user.is_authenticated:
        return Attachment.objects.none()
    visible_room = Room.objects.visible_to(user).filter(pk=OuterRef("room_id"))
    return Attachment.objects.filter(
        Q(message__isnull=False, message__deleted_at__isnull=True, room__isnull=False)
        & Q(Exists(visible_room))
        | Q(message__isnull=True, uploader=user)
    )


def _attachment(request, pk: int) -> Attachment:
    attachment = visible_attachments(_user(request)).filter(pk=pk).first()
    if attachment is None:
        raise Http404
    return attachment


def _serve(field, *, content_type: str, name: str, inline: bool):
    disposition = content_disposition_header(not inline, name)
    if settings.PARLEY_SENDFILE == "nginx":
        response = HttpResponse(b"", content_type=content_type)
        response["X-Accel-Redirect"] = settings.PARLEY_SENDFILE_PREFIX + quote(field.name)
    else:
        response = FileResponse(field.open("rb"), content_type=content_type)
    response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = SANDBOX
    response._csp_exempt_ro = True  # no report-only policy beside it either
    response["Cache-Control"] = "private, max-age=3600"
    response["Vary"] = "Cookie, Authorization"
    return response


@require_safe
def file_original(request, pk: int, name: str):
    """The stored file. ``name`` is for people (and the browser's save dialog); the id
    decides, so a renamed link still works."""
    attachment = _attachment(request, pk)
    return _serve(
        attachment.file,
        content_type=attachment.content_type,
        name=attachment.name,
        inline=attachment.is_image,
    )


@require_safe
def file_thumbnail(request, pk: int):
    attachment = _attachment(request, pk)
    if not attachment.thumbnail:
        raise Http404
    stem = attachment.name.rsplit(".", 1)[0] or "thumbnail"
    return _serve(attachment.thumbnail, content_type="image/webp", name=f"{stem}.webp", inline=True)
