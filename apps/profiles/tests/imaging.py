"""Image bytes for the avatar tests, made in memory (no fixtures on disk)."""

import io
import struct
import zlib

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

RED = (220, 20, 20)
BLUE = (20, 20, 220)


def two_tone(size=(200, 100), mode="RGB") -> Image.Image:
    """Left half red, right half blue: shows which way an image was cropped or rotated."""
    width, height = size
    image = Image.new(mode, size, BLUE)
    image.paste(Image.new(mode, (width // 2, height), RED), (0, 0))
    return image


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def jpeg_with_exif(*, orientation: int = 1, size=(200, 100)) -> bytes:
    """A JPEG carrying camera metadata (maker, GPS position) and an orientation tag."""
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0112] = orientation  # Orientation
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    return encode(two_tone(size), "JPEG", exif=exif, quality=95)


def gif_animated() -> bytes:
    """Two frames: red then blue. Only the first may be used."""
    first = Image.new("RGB", (64, 64), RED).convert("P")
    second = Image.new("RGB", (64, 64), BLUE).convert("P")
    out = io.BytesIO()
    first.save(out, format="GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and an IHDR chunk (correct CRC) declaring width×height, then IEND.

    Nothing is allocated: a decoder that trusted it would have to produce the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<script>alert(1)</script><rect width="10" height="10" fill="red"/></svg>'
)


def upload(content: bytes, name: str = "avatar.png", content_type: str = "image/png"):
    return SimpleUploadedFile(name, content, content_type=content_type)
