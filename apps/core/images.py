"""Reading untrusted image uploads with Pillow: the type from the bytes, the size from the
header before any pixel is decoded, and re-encoding without metadata.

Used by avatars (``apps.profiles.services.avatar_process``) and attachments
(``apps.chat.attachments``). The caller decides what a refusal means for it (an avatar must be
an image; an attachment that is not one is stored as a plain file)."""

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_FORMATS",
    "CONTENT_TYPES",
    "ImageTooLarge",
    "NotAnImage",
    "UnreadableImage",
    "fit_within",
    "open_untrusted",
    "stripped",
    "upright",
]

# Decoders Pillow may try: the type comes from the bytes, never from the name or Content-Type.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}


class NotAnImage(Exception):
    """No accepted decoder recognises the bytes."""


class ImageTooLarge(Exception):
    """The header declares more pixels (or a longer side) than allowed, or Pillow's
    decompression-bomb guard fired."""


class UnreadableImage(Exception):
    """Recognised as an image, but truncated, corrupt or of an impossible size."""


# What Pillow's decoders raise on truncated or corrupt data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError)


@contextmanager
def open_untrusted(
    upload, *, max_side: int | None = None, max_pixels: int | None = None
) -> Iterator[Image.Image]:
    """The upload opened by Pillow (header read, no pixels decoded yet), once its dimensions
    passed the limits. Decoding (``image.load()``) and anything derived from it belongs in
    the ``with`` block: its failures come out as ``UnreadableImage``/``ImageTooLarge``."""
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload, formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise UnreadableImage
                if max_side is not None and (width > max_side or height > max_side):
                    raise ImageTooLarge
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageTooLarge
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge from None
    except UnidentifiedImageError:
        raise NotAnImage from None
    except _DECODE_ERRORS:
        raise UnreadableImage from None


def upright(image: Image.Image) -> Image.Image:
    """The decoded first frame, turned as its EXIF orientation says."""
    image.load()
    return ImageOps.exif_transpose(image)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in {"RGBA", "LA", "PA"} or (
        image.mode == "P" and "transparency" in image.info
    )


def stripped(image: Image.Image, *, for_format: str | None = None) -> Image.Image:
    """A new image with the same pixels and nothing of the original's metadata (EXIF, XMP,
    ICC profile, comments, text chunks): Pillow's encoders fall back to ``image.info`` for
    some of those, and the converted copy's ``info`` is emptied (it is a plain ``Image``,
    with no EXIF of its own: ``getexif()`` reads that ``info``). One copy of the pixels, not
    two: a 12-megapixel photo is 36 MB of them. Converted to RGB(A) (L/LA kept for grey
    images; a palette is made again by the GIF encoder); no alpha for JPEG."""
    grey = image.mode in {"L", "LA"}
    mode = image.mode if grey else ("RGBA" if _has_alpha(image) else "RGB")
    if for_format == "JPEG":
        mode = "L" if image.mode in {"L", "LA"} else "RGB"
    clean = image.convert(mode)
    clean.info = {}
    return clean


def fit_within(width: int, height: int, side: int) -> tuple[int, int]:
    """The size of ``width``×``height`` scaled down (never up) to fit a ``side`` square,
    keeping the aspect ratio, each side at least 1 pixel."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()
