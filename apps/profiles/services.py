"""Writes for profiles. The HTML editor and the API (PATCH /api/profiles/me/) both call
``profile_update``; an avatar is only ever stored after ``avatar_process`` re-encoded it."""

import io
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from PIL import Image, ImageOps

from apps.core import images, text
from apps.core.text import Wording

from .models import Profile

__all__ = ["DISPLAY_NAME_MAX_LENGTH", "avatar_process", "language_codes", "profile_update"]

DISPLAY_NAME_MAX_LENGTH = 40
# Decoders Pillow may try: the type comes from the bytes, never from the name or Content-Type.
AVATAR_FORMATS = images.IMAGE_FORMATS
# Stored format: WebP keeps transparency, is small, and every current browser shows it.
AVATAR_OUTPUT_FORMAT = "WEBP"
AVATAR_OUTPUT_EXTENSION = "webp"

_UNSET: Any = object()


def _error(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


_DISPLAY_NAME = Wording(
    not_text=gettext_lazy("Enter a valid display name."),
    empty="",  # unused: an empty display name means "show my username"
    too_long=gettext_lazy("A display name can have at most %(max)d characters (it has %(len)d)."),
    # Control and invisible formatting characters (newlines, RTL overrides, zero-width
    # spaces) would let a name break layouts or impersonate someone.
    forbidden=gettext_lazy("A display name cannot contain control or invisible characters."),
)


def language_codes() -> list[str]:
    """The language codes a profile may save (settings.LANGUAGES); "" (follow the browser's
    Accept-Language) is allowed besides."""
    return [code for code, _name in settings.LANGUAGES]


def _clean_display_name(value: object) -> str:
    """Stripped; nothing visible (whitespace, zero-width characters) means "" (the username
    is shown instead)."""
    if value is None:
        value = ""
    return text.clean_name(
        value, max_length=DISPLAY_NAME_MAX_LENGTH, wording=_DISPLAY_NAME, allow_empty=True
    )


def _upload_size(upload) -> int | None:
    size = getattr(upload, "size", None)
    if isinstance(size, int):
        return size
    try:
        pos = upload.tell()
        upload.seek(0, io.SEEK_END)
        end = upload.tell()
        upload.seek(pos)
        return end
    except (AttributeError, OSError, ValueError):
        return None


def avatar_process(*, upload) -> ContentFile:
    """Validate an uploaded image and re-encode it as a square WebP thumbnail.

    Accepts JPEG, PNG, WebP and GIF (the first frame), decided from the decoded content. The
    byte size is checked first, then the dimensions from the header alone, and only then are
    the pixels decoded. The result is a ``PARLEY_AVATAR_SIZE`` square, centre-cropped, rotated
    upright from its EXIF orientation and carrying no metadata (EXIF, ICC, XMP), under a random
    file name. Raises ``ValidationError`` with a message a person can act on.
    """
    max_bytes = settings.PARLEY_AVATAR_MAX_BYTES
    max_side = settings.PARLEY_AVATAR_MAX_SIDE
    size = _upload_size(upload)
    if size is None or size == 0:
        raise _error(_("The uploaded file is empty."), "empty")
    if size > max_bytes:
        raise _error(
            _("The image is too big: at most %(mb)d MB.") % {"mb": max_bytes // (1024 * 1024)},
            "file_size",
        )
    too_large = _error(
        _("The image is too large: at most %(side)d×%(side)d pixels.") % {"side": max_side},
        "dimensions",
    )
    unreadable = _error(
        _("This file is not an image we can read. Upload a JPEG, PNG, WebP or GIF."),
        "invalid_image",
    )
    try:
        with images.open_untrusted(upload, max_side=max_side) as image:  # the header only
            thumbnail = _square_thumbnail(images.upright(image))  # the first frame
    except images.ImageTooLarge:
        raise too_large from None
    except (images.NotAnImage, images.UnreadableImage):
        raise unreadable from None
    content = images.encode(thumbnail, AVATAR_OUTPUT_FORMAT, quality=85, method=4)
    return ContentFile(content, name=f"{uuid.uuid4().hex}.{AVATAR_OUTPUT_EXTENSION}")


def _square_thumbnail(upright: Image.Image) -> Image.Image:
    side = settings.PARLEY_AVATAR_SIZE
    fitted = ImageOps.fit(images.stripped(upright), (side, side), method=Image.Resampling.LANCZOS)
    # A fresh image: nothing from the original's metadata (info, EXIF, ICC) comes along.
    return images.stripped(fitted)


def profile_update(
    *,
    profile: Profile,
    display_name: str = _UNSET,
    avatar=_UNSET,
    remove_avatar: bool = False,
    show_presence: bool = _UNSET,
    send_read_receipts: bool = _UNSET,
    language: str = _UNSET,
) -> Profile:
    """Change a profile's display name and/or avatar; arguments left out are left alone.

    ``display_name`` is stripped; empty means "show my username". ``avatar`` is an uploaded
    file (``None`` also means "no change"); ``remove_avatar=True`` clears the avatar unless a
    new one is given. Everything is validated before anything is written; errors come as one
    ``ValidationError`` keyed by field (``display_name``, ``avatar``). The replaced avatar file
    is deleted once the transaction commits. ``show_presence`` and ``send_read_receipts``
    (the privacy settings) must be booleans. ``language`` is a code of settings.LANGUAGES, or
    "" to follow the browser's Accept-Language.
    """
    errors: dict[str, list[ValidationError]] = {}
    new_name = profile.display_name
    if display_name is not _UNSET:
        try:
            new_name = _clean_display_name(display_name)
        except ValidationError as exc:
            errors["display_name"] = exc.error_list
    new_avatar: ContentFile | None = None
    if avatar is not _UNSET and avatar is not None:
        try:
            new_avatar = avatar_process(upload=avatar)
        except ValidationError as exc:
            errors["avatar"] = exc.error_list
    changes = {}
    for field, value in (
        ("show_presence", show_presence),
        ("send_read_receipts", send_read_receipts),
    ):
        if value is _UNSET:
            continue
        if not isinstance(value, bool):
            errors[field] = [_error(_("Enter true or false."), "invalid")]
        else:
            changes[field] = value
    if language is not _UNSET:
        if language == "" or language in language_codes():
            changes["language"] = language
        else:
            errors["language"] = [
                _error(
                    _("Choose one of: %(choices)s, or empty to follow the browser.")
                    % {"choices": ", ".join(language_codes())},
                    "invalid_choice",
                )
            ]
    if errors:
        raise ValidationError(errors)

    for field, value in changes.items():
        setattr(profile, field, value)
    old_avatar_name = profile.avatar.name if profile.avatar else ""
    profile.display_name = new_name
    if new_avatar is not None:
        # save=False: the file lands in storage now, the row below.
        profile.avatar.save(new_avatar.name, new_avatar, save=False)
    elif remove_avatar:
        profile.avatar = ""
    stored_name = profile.avatar.name if profile.avatar else ""
    storage = profile.avatar.storage
    try:
        with transaction.atomic():
            profile.save()
    except Exception:
        if new_avatar is not None and stored_name:
            storage.delete(stored_name)  # do not leave an orphan behind a failed save
        raise
    if old_avatar_name and old_avatar_name != stored_name:
        transaction.on_commit(lambda: storage.delete(old_avatar_name))
    return profile
