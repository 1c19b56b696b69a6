import io
import re

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from apps.profiles.services import avatar_process, profile_update

from .imaging import (
    BLUE,
    RED,
    SVG,
    encode,
    gif_animated,
    jpeg_with_exif,
    png_header_only,
    two_tone,
    upload,
)

RANDOM_NAME = re.compile(r"^[0-9a-f]{32}\.webp$")


def decoded(content_file) -> Image.Image:
    image = Image.open(io.BytesIO(content_file.read()))
    image.load()
    return image


def close_to(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def stored_avatar_files(settings) -> list:
    folder = settings.MEDIA_ROOT / "avatars"
    return sorted(folder.iterdir()) if folder.exists() else []


def avatar_error(exc_info) -> ValidationError:
    return exc_info.value.error_dict["avatar"][0]


# --- avatar_process: accepted images ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (encode(two_tone(), "JPEG"), "photo.jpg"),
        (encode(two_tone(), "PNG"), "photo.png"),
        (encode(two_tone(mode="RGBA"), "PNG"), "alpha.png"),
        (encode(two_tone(), "WEBP"), "photo.webp"),
        (encode(two_tone().convert("P"), "GIF"), "photo.gif"),
    ],
    ids=["jpeg", "png", "png-rgba", "webp", "gif"],
)
def test_avatar_process_reencodes_each_accepted_type_to_a_square_webp(settings, content, name):
    result = avatar_process(upload=upload(content, name))

    image = decoded(result)
    assert image.format == "WEBP"
    assert image.size == (settings.PARLEY_AVATAR_SIZE, settings.PARLEY_AVATAR_SIZE)
    assert RANDOM_NAME.match(result.name)


def test_avatar_process_gives_each_upload_a_new_random_name():
    content = encode(two_tone(), "PNG")
    names = {avatar_process(upload=upload(content, "same.png")).name for _ in range(3)}
    assert len(names) == 3
    assert not any("same" in n for n in names)


def test_avatar_process_strips_exif_and_applies_the_orientation_first():
    """Orientation 6 means "rotate 90° clockwise to display": the red left half must end up on
    top. The camera maker and GPS position must be gone from the stored file."""
    result = avatar_process(upload=upload(jpeg_with_exif(orientation=6), "cam.jpg", "image/jpeg"))
    raw = result.read()
    image = Image.open(io.BytesIO(raw))

    assert not image.getexif()
    assert "exif" not in image.info and "icc_profile" not in image.info
    assert b"SpyCam" not in raw
    rgb = image.convert("RGB")
    side = image.size[0]
    assert close_to(rgb.getpixel((side // 2, 5)), RED)
    assert close_to(rgb.getpixel((side // 2, side - 5)), BLUE)


def test_avatar_process_crops_the_centre_of_a_wide_image():
    """A 200×100 red|blue image cropped to its centre square keeps both halves side by side."""
    image = decoded(avatar_process(upload=upload(encode(two_tone(), "PNG")))).convert("RGB")
    side = image.size[0]
    assert close_to(image.getpixel((5, side // 2)), RED)
    assert close_to(image.getpixel((side - 5, side // 2)), BLUE)


def test_avatar_process_uses_the_first_frame_of_an_animated_gif():
    image = decoded(avatar_process(upload=upload(gif_animated(), "anim.gif", "image/gif")))
    assert getattr(image, "n_frames", 1) == 1
    assert close_to(image.convert("RGB").getpixel((10, 10)), RED)


def test_avatar_process_decides_the_type_from_content_not_name_or_content_type():
    """A PNG sent as "notes.txt" with text/plain is still a PNG, and is accepted."""
    result = avatar_process(upload=upload(encode(two_tone(), "PNG"), "notes.txt", "text/plain"))
    assert decoded(result).format == "WEBP"


# --- avatar_process: rejected files ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "content_type"),
    [
        (b"just some text, not an image\n" * 10, "evil.png", "image/png"),
        (SVG, "vector.svg", "image/svg+xml"),
        (SVG, "vector.png", "image/png"),
        (encode(two_tone(), "BMP"), "bitmap.png", "image/png"),
        (encode(two_tone(), "TIFF"), "scan.jpg", "image/jpeg"),
        (encode(two_tone(), "JPEG")[:200], "truncated.jpg", "image/jpeg"),
    ],
    ids=["text-as-png", "svg", "svg-as-png", "bmp", "tiff", "truncated-jpeg"],
)
def test_avatar_process_rejects_what_is_not_a_jpeg_png_webp_or_gif(content, name, content_type):
    with pytest.raises(ValidationError) as exc_info:
        avatar_process(upload=upload(content, name, content_type))
    assert exc_info.value.code == "invalid_image"
    assert "JPEG, PNG, WebP or GIF" in exc_info.value.messages[0]


def test_avatar_process_rejects_a_header_declaring_50000_square_before_decoding():
    """The file has no pixel data at all: rejecting it for its size (rather than as broken)
    shows the dimensions were judged from the header alone."""
    with pytest.raises(ValidationError) as exc_info:
        avatar_process(upload=upload(png_header_only(50000, 50000), "bomb.png"))
    assert exc_info.value.code == "dimensions"
    assert "4096" in exc_info.value.messages[0]


def test_avatar_process_rejects_a_side_over_the_limit_even_when_the_file_is_small(settings):
    content = encode(Image.new("RGB", (settings.PARLEY_AVATAR_MAX_SIDE + 1, 8)), "PNG")
    assert len(content) < 100_000
    with pytest.raises(ValidationError) as exc_info:
        avatar_process(upload=upload(content, "strip.png"))
    assert exc_info.value.code == "dimensions"


def test_avatar_process_accepts_exactly_the_maximum_side(settings):
    content = encode(Image.new("RGB", (settings.PARLEY_AVATAR_MAX_SIDE, 8)), "PNG")
    assert decoded(avatar_process(upload=upload(content, "edge.png"))).size == (256, 256)


def test_avatar_process_rejects_a_file_over_the_byte_limit():
    content = b"\xff\xd8\xff" + b"\0" * (6 * 1024 * 1024)
    with pytest.raises(ValidationError) as exc_info:
        avatar_process(upload=upload(content, "huge.jpg", "image/jpeg"))
    assert exc_info.value.code == "file_size"
    assert "5 MB" in exc_info.value.messages[0]


def test_avatar_process_rejects_an_empty_file():
    with pytest.raises(ValidationError) as exc_info:
        avatar_process(upload=upload(b"", "empty.png"))
    assert exc_info.value.code == "empty"


# --- profile_update --------------------------------------------------------------------------


def test_profile_update_strips_the_display_name(alice):
    profile = profile_update(profile=alice.profile, display_name="  Alice Liddell \t")
    profile.refresh_from_db()
    assert profile.display_name == "Alice Liddell"


def test_profile_update_accepts_40_characters_and_rejects_41(alice):
    profile_update(profile=alice.profile, display_name="x" * 40)
    assert alice.profile.display_name == "x" * 40

    with pytest.raises(ValidationError) as exc_info:
        profile_update(profile=alice.profile, display_name="y" * 41)
    error = exc_info.value.error_dict["display_name"][0]
    assert error.code == "max_length"
    assert "40" in error.messages[0]
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "x" * 40


def test_profile_update_counts_length_after_stripping(alice):
    profile_update(profile=alice.profile, display_name="   " + "z" * 40 + "   ")
    assert alice.profile.display_name == "z" * 40


def test_profile_update_empty_display_name_falls_back_to_the_username(alice):
    profile_update(profile=alice.profile, display_name="   ")
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == ""
    assert alice.profile.name == "alice"


@pytest.mark.parametrize("name", ["two\nlines", "bell\x07", "evil\u202eesrever", "zero\u200bwidth"])
def test_profile_update_rejects_control_and_invisible_characters(alice, name):
    with pytest.raises(ValidationError) as exc_info:
        profile_update(profile=alice.profile, display_name=name)
    assert "display_name" in exc_info.value.error_dict


def test_profile_update_without_display_name_leaves_it_alone(alice):
    profile_update(profile=alice.profile, avatar=upload(encode(two_tone(), "PNG")))
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "Alice"
    assert alice.profile.avatar


def test_profile_update_stores_the_avatar_under_avatars_with_a_random_webp_name(alice, settings):
    profile_update(profile=alice.profile, avatar=upload(encode(two_tone(), "PNG"), "me.png"))
    alice.profile.refresh_from_db()
    folder, filename = alice.profile.avatar.name.split("/")
    assert folder == "avatars"
    assert RANDOM_NAME.match(filename)
    assert stored_avatar_files(settings) == [settings.MEDIA_ROOT / alice.profile.avatar.name]
    with Image.open(alice.profile.avatar.path) as image:
        assert image.format == "WEBP"


@pytest.mark.parametrize(
    "content",
    [
        b"plain text\n",
        SVG,
        png_header_only(50000, 50000),
        b"\x89PNG" + b"\0" * (6 * 1024 * 1024),
    ],
    ids=["text-as-png", "svg", "50000-square-header", "6-mb"],
)
def test_profile_update_with_a_bad_avatar_saves_nothing(alice, settings, content):
    """A bad avatar rejects the whole update, keyed by field, and writes no file and no row —
    not even the (valid) display name sent with it."""
    with pytest.raises(ValidationError) as exc_info:
        profile_update(
            profile=alice.profile, display_name="New name", avatar=upload(content, "a.png")
        )
    assert set(exc_info.value.error_dict) == {"avatar"}
    assert avatar_error(exc_info).messages[0]
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "Alice"
    assert not alice.profile.avatar
    assert stored_avatar_files(settings) == []


def test_profile_update_reports_every_bad_field_at_once(alice):
    with pytest.raises(ValidationError) as exc_info:
        profile_update(profile=alice.profile, display_name="n" * 50, avatar=upload(SVG, "x.svg"))
    assert set(exc_info.value.error_dict) == {"display_name", "avatar"}


def test_profile_update_deletes_the_replaced_avatar_file(
    alice, settings, django_capture_on_commit_callbacks
):
    profile_update(profile=alice.profile, avatar=upload(encode(two_tone(), "PNG")))
    first = settings.MEDIA_ROOT / alice.profile.avatar.name

    with django_capture_on_commit_callbacks(execute=True):
        profile_update(profile=alice.profile, avatar=upload(encode(two_tone(), "JPEG"), "b.jpg"))

    second = settings.MEDIA_ROOT / alice.profile.avatar.name
    assert second != first
    assert stored_avatar_files(settings) == [second]


def test_profile_update_remove_avatar_clears_it_and_deletes_the_file(
    alice, settings, django_capture_on_commit_callbacks
):
    profile_update(profile=alice.profile, avatar=upload(encode(two_tone(), "PNG")))
    assert stored_avatar_files(settings)

    with django_capture_on_commit_callbacks(execute=True):
        profile_update(profile=alice.profile, remove_avatar=True)

    alice.profile.refresh_from_db()
    assert not alice.profile.avatar
    assert stored_avatar_files(settings) == []


def test_profile_update_avatar_none_means_no_change(alice):
    profile_update(profile=alice.profile, avatar=upload(encode(two_tone(), "PNG")))
    name = alice.profile.avatar.name
    profile_update(profile=alice.profile, display_name="Al", avatar=None)
    alice.profile.refresh_from_db()
    assert alice.profile.avatar.name == name
    assert alice.profile.display_name == "Al"
