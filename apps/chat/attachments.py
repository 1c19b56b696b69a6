"""Attachments: uploading a file to a room (before the message that carries it is sent),
removing one's unsent upload, and deleting old unsent uploads.

An upload is judged by its content, never by its name or Content-Type. Pillow opens it with
the four image decoders Parley shows (JPEG, PNG, WebP, GIF); the header's dimensions are
checked before a single pixel is decoded (``PARLEY_IMAGE_MAX_PIXELS``), so a small file that
declares 50000×50000 costs nothing. An image is stored re-encoded in its own format from its
upright first frame (EXIF orientation applied, then every piece of metadata dropped: EXIF,
GPS, XMP, ICC, comments; an animated GIF or WebP keeps its first frame only), with a WebP
thumbnail fitting ``PARLEY_THUMBNAIL_SIZE``, made once here. Anything else is a "file":
stored byte for byte (copied in chunks by the storage, never read whole into memory) and
served as a download; its type comes from its name only when that type cannot be rendered by
a browser as a page or an image (else ``application/octet-stream``).

Sending (attaching uploads to a message) is ``services.message_send(attachments=[ids])``;
serving is ``files.py``; stored files are deleted after commit (``filestore.py``)."""

import datetime
import mimetypes
import os
import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.core import images

from . import filestore
from .errors import AttachmentNotFound
from .models import Attachment, Room
from .services import _posting_access, _rate_limit, _require_visible

__all__ = [
    "attachment_discard",
    "attachment_upload",
    "attachments_cleanup",
    "clean_file_name",
    "safe_content_type",
]

NAME_MAX_LENGTH = 255
FALLBACK_NAME = "file"
OCTET_STREAM = "application/octet-stream"
# Types a browser may render as a document, run, or show as an image: a "file" never gets one
# from its name (an image type is given only to what Pillow decoded and re-encoded).
_RISKY_TYPE = re.compile(r"^image/|html|svg|xml|javascript|ecmascript|jscript|^text/css")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_file_name(name: object) -> str:
    """The uploader's file name for display and for ``Content-Disposition``: the last path
    segment only (``/`` and ``\\`` both separate), NFC, no control or bidi characters, no
    ``..``, no leading dots or spaces, at most 255 characters (the extension kept when
    shortening). Nothing left: ``"file"``."""
    text = name if isinstance(name, str) else ""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _CONTROL.sub("", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = text.strip().lstrip(". ").strip()
    if len(text) > NAME_MAX_LENGTH:
        stem, ext = os.path.splitext(text)
        if len(ext) > 16:
            ext = ""
        text = stem[: NAME_MAX_LENGTH - len(ext)].rstrip() + ext
    return text or FALLBACK_NAME


def safe_content_type(name: str) -> str:
    """The Content-Type of a non-image file, from its name, unless a browser could render
    that type (HTML, SVG, XML, scripts, images): then ``application/octet-stream``."""
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if not guessed or encoding or _RISKY_TYPE.search(guessed.lower()):
        return OCTET_STREAM
    return guessed


def _size(upload) -> int | None:
    size = getattr(upload, "size", None)
    if isinstance(size, int):
        return size
    try:
        upload.seek(0, os.SEEK_END)
        end = upload.tell()
        upload.seek(0)
        return end
    except (AttributeError, OSError, ValueError):
        return None


def _check_size(upload) -> int:
    max_bytes = settings.PARLEY_ATTACHMENT_MAX_BYTES
    size = _size(upload)
    if not size:
        raise ValidationError(_("The file is empty."), code="empty")
    if size > max_bytes:
        raise ValidationError(
            _("The file is too big: at most %(size)s.") % {"size": human_size(max_bytes)},
            code="file_size",
        )
    return size


def human_size(size: int) -> str:
    """B, KB, MB with one decimal (1024-based), the same in every language: what the article
    shows (``chat_tags.file_size``)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


class _Processed:
    """What an upload becomes: the content to store and its facts."""

    def __init__(self, *, kind, content, content_type, size, width=None, height=None, thumb=None):
        self.kind, self.content, self.content_type, self.size = kind, content, content_type, size
        self.width, self.height, self.thumb = width, height, thumb


# How each accepted format is written again (first frame only; GIF keeps its palette).
_SAVE_PARAMS = {
    "JPEG": {"quality": 90},
    "PNG": {"optimize": False},
    "WEBP": {"quality": 90, "method": 4},
    "GIF": {},
}


def _process(upload, size: int) -> _Processed:
    too_large = ValidationError(
        _("The image is too large: at most %(mp)d megapixels.")
        % {"mp": settings.PARLEY_IMAGE_MAX_PIXELS // 1_000_000},
        code="dimensions",
    )
    try:
        with images.open_untrusted(upload, max_pixels=settings.PARLEY_IMAGE_MAX_PIXELS) as image:
            fmt = image.format
            picture = images.upright(image)
            # At most two copies of the pixels alive at once (the decoded frame is let go
            # as soon as its upright copy exists, that one once it is stripped): bench S15.
            image.close()
            original = images.stripped(picture, for_format=fmt)
            del picture
            stored = images.encode(original, fmt, **_SAVE_PARAMS[fmt])
            thumb_size = images.fit_within(*original.size, settings.PARLEY_THUMBNAIL_SIZE)
            thumb = images.stripped(original.resize(thumb_size, images.Image.Resampling.LANCZOS))
            thumb_bytes = images.encode(thumb, "WEBP", quality=80, method=4)
    except images.ImageTooLarge:
        raise too_large from None
    except (images.NotAnImage, images.UnreadableImage):
        # Not one of the images Parley shows (or a broken one): a plain file, byte for byte.
        upload.seek(0)
        name = getattr(upload, "name", "") or ""
        return _Processed(
            kind=Attachment.Kind.FILE,
            content=File(upload),
            content_type=safe_content_type(clean_file_name(name)),
            size=size,
        )
    return _Processed(
        kind=Attachment.Kind.IMAGE,
        content=ContentFile(stored),
        content_type=images.CONTENT_TYPES[fmt],
        size=len(stored),
        width=original.width,
        height=original.height,
        thumb=ContentFile(thumb_bytes),
    )


def attachment_upload(*, room: Room, user, upload) -> Attachment:
    """Store ``upload`` as an unsent attachment of ``user`` in ``room`` (one they may post
    in). Refused with a ValidationError: empty, over ``PARLEY_ATTACHMENT_MAX_BYTES`` (code
    ``file_size``), an image over ``PARLEY_IMAGE_MAX_PIXELS`` (code ``dimensions``) — nothing
    is stored then."""
    _posting_access(room, user)
    if upload is None or not hasattr(upload, "read"):
        raise ValidationError(_("Choose a file to upload."), code="required")
    size = _check_size(upload)
    _rate_limit(
        f"attachment:{user.pk}",
        settings.PARLEY_ATTACHMENT_RATE,
        gettext_lazy("You are uploading too fast. Try again in %(s)d s."),
    )
    name = clean_file_name(getattr(upload, "name", ""))
    processed = _process(upload, size)
    attachment = Attachment(
        room=room,
        uploader=user,
        kind=processed.kind,
        name=name,
        size=processed.size,
        content_type=processed.content_type,
        width=processed.width,
        height=processed.height,
    )
    # save=False: the files land in storage now (random names, attachment_path), the row below.
    attachment.file.save("upload", processed.content, save=False)
    if processed.thumb is not None:
        attachment.thumbnail.save("thumb.webp", processed.thumb, save=False)
    try:
        with transaction.atomic():
            if not Room.objects.filter(pk=room.pk).exists():
                raise AttachmentNotFound  # the room was deleted meanwhile
            attachment.save(force_insert=True)
    except BaseException:
        # Nothing may stay behind a failed save: the files go at once (no row names them).
        filestore.delete_now([attachment.file.name, attachment.thumbnail.name])
        raise
    return attachment


def attachment_discard(*, room: Room, user, attachment_id) -> None:
    """Remove one's own unsent upload (the composer's remove button): the row now, its files
    once that commits. Someone else's upload, a sent one, or none: AttachmentNotFound."""
    _require_visible(room, user)
    mine = Attachment.objects.filter(
        pk=attachment_id, room=room, uploader=user, message__isnull=True
    )
    with transaction.atomic():
        names = filestore.stored_names(mine.select_for_update())
        if not names:
            raise AttachmentNotFound
        mine.delete()
        filestore.delete_on_commit(names)


def attachments_cleanup(*, now: datetime.datetime | None = None, dry_run: bool = False) -> int:
    """Delete the unsent uploads older than ``PARLEY_ATTACHMENT_UNSENT_TTL`` (rows, and their
    files after commit). Returns how many there were."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.PARLEY_ATTACHMENT_UNSENT_TTL)
    stale = Attachment.objects.filter(message__isnull=True, created_at__lt=cutoff)
    if dry_run:
        return stale.count()
    with transaction.atomic():
        # Locked, so an upload being sent right now is either sent first (and no longer
        # matches) or deleted before the send looks for it.
        rows = list(stale.select_for_update().values_list("pk", "file", "thumbnail"))
        Attachment.objects.filter(pk__in=[pk for pk, *_ in rows]).delete()
        filestore.delete_on_commit(name for _pk, *names in rows for name in names)
    return len(rows)
