"""Attachments (issue 12): uploading (content decides the kind; metadata stripped; bombs and
oversized files refused with nothing stored), sending them with a message, serving them
behind the room's access rule, and deleting their stored files on every path rows go.

Every test has its own MEDIA_ROOT (the root conftest's autouse fixture)."""

import io
import json
import uuid
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image, ImageFile
from rest_framework.authtoken.models import Token

from apps.chat import attachments, selectors, services
from apps.chat.errors import AttachmentNotFound, RoomNotFound
from apps.chat.models import Attachment, Message
from apps.profiles.tests.imaging import SVG, encode, jpeg_with_exif, png_header_only, two_tone

from .helpers import joined, send_json

pytestmark = pytest.mark.django_db


def upload(content: bytes, name: str = "photo.png", content_type: str = "image/png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def put(room, user, content=b"just some bytes", name="notes.txt"):
    return attachments.attachment_upload(room=room, user=user, upload=upload(content, name))


def png(size=(200, 100)) -> bytes:
    return encode(two_tone(size), "PNG")


@pytest.fixture
def group(alice, bob):
    """A private group: Alice owns it, Bob is a member, Carol is an outsider."""
    return services.room_create(name="team", creator=alice, private=True, members=["bob"])


# --- upload: what a file becomes ---------------------------------------------------------------


def test_an_image_is_reencoded_without_exif_or_gps_and_gets_a_webp_thumbnail(public_room, alice):
    """EXIF (camera, GPS) goes from the stored original and the thumbnail; the orientation is
    applied first (a 200×100 picture tagged "rotate 90°" is stored 100×200). Nothing of the
    original's metadata is kept (not even the orientation tag: it is applied)."""
    content = jpeg_with_exif(orientation=6)
    assert Image.open(io.BytesIO(content)).getexif()  # the fixture does carry EXIF

    attachment = put(public_room, alice, content, "IMG_0001.JPG")

    assert attachment.kind == Attachment.Kind.IMAGE
    assert attachment.content_type == "image/jpeg"
    assert (attachment.width, attachment.height) == (100, 200)
    with attachment.file.open("rb") as stored:
        original = Image.open(io.BytesIO(stored.read()))
    with attachment.thumbnail.open("rb") as stored:
        thumbnail = Image.open(io.BytesIO(stored.read()))
    assert original.format == "JPEG" and original.size == (100, 200)
    assert thumbnail.format == "WEBP"
    for image in (original, thumbnail):
        assert not image.getexif()
        assert not {"exif", "xmp", "icc_profile", "comment", "XML:com.adobe.xmp"} & set(image.info)
    assert attachment.size == attachment.file.size
    assert b"SpyCam" not in Path(attachment.file.path).read_bytes()


def test_the_thumbnail_fits_the_configured_square_and_the_article_says_its_size(public_room, alice):
    attachment = put(public_room, alice, png((1000, 500)), "wide.png")

    with attachment.thumbnail.open("rb") as stored:
        thumbnail = Image.open(io.BytesIO(stored.read()))
    side = settings.PARLEY_THUMBNAIL_SIZE
    assert thumbnail.size == (side, side // 2) == attachment.thumbnail_size
    assert (attachment.width, attachment.height) == (1000, 500)


def test_a_png_keeps_its_format_and_loses_its_text_chunks(public_room, alice):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address")
    content = encode(two_tone(), "PNG", pnginfo=info)

    attachment = put(public_room, alice, content, "shot.png")

    assert attachment.content_type == "image/png"
    data = Path(attachment.file.path).read_bytes()
    assert Image.open(io.BytesIO(data)).format == "PNG"
    assert b"home address" not in data


def test_an_animated_gif_is_stored_as_its_first_frame(public_room, alice):
    from apps.profiles.tests.imaging import gif_animated

    attachment = put(public_room, alice, gif_animated(), "anim.gif")

    image = Image.open(attachment.file.path)
    assert image.format == "GIF"
    assert getattr(image, "n_frames", 1) == 1


@pytest.mark.parametrize(
    ("content", "name"),
    [(SVG, "drawing.svg"), (SVG, "drawing.png"), (b"<html><script>alert(1)</script>", "x.png")],
    ids=["svg", "svg-named-png", "html-named-png"],
)
def test_svg_and_html_are_files_stored_byte_for_byte_as_octet_stream(
    public_room, alice, content, name
):
    attachment = put(public_room, alice, content, name)

    assert attachment.kind == Attachment.Kind.FILE
    assert attachment.content_type == "application/octet-stream"
    assert not attachment.thumbnail
    assert Path(attachment.file.path).read_bytes() == content


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("report.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
        ("page.html", "application/octet-stream"),
        ("feed.xml", "application/octet-stream"),
        ("app.js", "application/octet-stream"),
        ("fake.jpg", "application/octet-stream"),  # not decodable: not an image type either
        ("archive.tar.gz", "application/octet-stream"),  # an encoding: never served as one
        ("no-extension", "application/octet-stream"),
    ],
)
def test_a_files_type_comes_from_its_name_only_when_a_browser_cannot_render_it(
    public_room, alice, name, content_type
):
    assert put(public_room, alice, b"plain bytes", name).content_type == content_type


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\x00b.txt", "ab.txt"),
        ("..", "file"),
        ("", "file"),
        ("   ", "file"),
        (".hidden", "hidden"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
        ("my..report.pdf", "my.report.pdf"),
        ("Привет.txt", "Привет.txt"),
    ],
)
def test_file_names_are_cleaned(raw, clean):
    assert attachments.clean_file_name(raw) == clean


def test_a_name_with_dotdot_and_nul_is_cleaned_and_stored_under_a_random_name(public_room, alice):
    attachment = put(public_room, alice, b"data", "../../x\x00y.txt")

    assert attachment.name == "xy.txt"
    assert attachment.file.name.startswith("attachments/")
    assert "xy" not in attachment.file.name and ".." not in attachment.file.name


# --- upload: refusals, nothing stored ------------------------------------------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decode fails the test: the refusal must come from the header alone."""

    def refuse(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_a_png_declaring_50000_square_is_refused_without_decoding(public_room, alice, no_decoding):
    with pytest.raises(ValidationError) as caught:
        put(public_room, alice, png_header_only(50000, 50000), "bomb.png")

    assert caught.value.code == "dimensions"
    assert "megapixels" in caught.value.messages[0]
    assert stored_files() == [] and Attachment.objects.count() == 0


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(
    public_room, alice, settings, no_decoding
):
    settings.PARLEY_IMAGE_MAX_PIXELS = 100
    with pytest.raises(ValidationError) as caught:
        put(public_room, alice, png((20, 20)), "small-but-over.png")

    assert caught.value.code == "dimensions"
    assert stored_files() == [] and Attachment.objects.count() == 0


def test_an_oversized_file_is_refused_and_nothing_is_stored(public_room, alice, settings):
    settings.PARLEY_ATTACHMENT_MAX_BYTES = 1000
    put(public_room, alice, b"x" * 1000, "exactly.bin")  # the limit itself is fine
    Attachment.objects.all().delete()
    for path in stored_files():
        path.unlink()

    with pytest.raises(ValidationError) as caught:
        put(public_room, alice, b"x" * 1001, "big.bin")

    assert caught.value.code == "file_size"
    assert stored_files() == [] and Attachment.objects.count() == 0


def test_a_zero_byte_file_is_refused(public_room, alice):
    with pytest.raises(ValidationError) as caught:
        put(public_room, alice, b"", "empty.txt")

    assert caught.value.code == "empty"
    assert stored_files() == [] and Attachment.objects.count() == 0


def test_uploads_are_rate_limited(public_room, alice, settings, frozen_clock):
    settings.PARLEY_ATTACHMENT_RATE = (2, 60)
    put(public_room, alice)
    put(public_room, alice)

    with pytest.raises(services.RateLimited):
        put(public_room, alice)

    assert Attachment.objects.count() == 2


# --- upload and send: who may -----------------------------------------------------------------


def test_upload_access_owner_member_outsider_anonymous(group, alice, bob, carol):
    from django.contrib.auth.models import AnonymousUser

    assert put(group, alice).uploader == alice
    assert put(group, bob).uploader == bob
    for user in (carol, AnonymousUser()):
        with pytest.raises(RoomNotFound):
            put(group, user)
    assert Attachment.objects.count() == 2


def test_anyone_may_upload_to_a_public_room(public_room, carol):
    assert put(public_room, carol).room == public_room


def test_a_message_carries_its_files_in_the_order_given(group, alice):
    first, second = put(group, alice, name="b.txt"), put(group, alice, png(), "a.png")

    message = services.message_send(
        room=group, author=alice, body="see", attachments=[second.pk, first.pk]
    ).message

    message.refresh_from_db()
    assert message.has_attachments
    assert [(a.pk, a.position) for a in message.attachments.order_by("position")] == [
        (second.pk, 0),
        (first.pk, 1),
    ]
    assert message.search_text == "see\na.png\nb.txt"


def test_a_message_may_be_files_only(group, alice):
    file = put(group, alice, name="Отчёт.PDF")

    message = services.message_send(room=group, author=alice, body="", attachments=[file.pk])

    assert message.message.body == ""
    assert Message.objects.get().search_text == "отчет.pdf"


def test_an_empty_message_without_files_is_still_refused(group, alice):
    with pytest.raises(ValidationError):
        services.message_send(room=group, author=alice, body="", attachments=[])
    assert Message.objects.count() == 0


def test_an_upload_cannot_go_to_two_messages(group, alice):
    file = put(group, alice)
    services.message_send(room=group, author=alice, body="one", attachments=[file.pk])

    with pytest.raises(ValidationError) as caught:
        services.message_send(room=group, author=alice, body="two", attachments=[file.pk])

    assert "already sent" in caught.value.messages[0]
    assert Message.objects.count() == 1


@pytest.mark.parametrize("whose", ["other-user", "other-room", "missing"])
def test_only_ones_own_unsent_uploads_of_this_room_can_be_sent(
    group, public_room, alice, bob, whose
):
    if whose == "other-user":
        pk = put(group, bob).pk
    elif whose == "other-room":
        pk = put(public_room, alice).pk
    else:
        pk = 999_999

    with pytest.raises(ValidationError) as caught:
        services.message_send(room=group, author=alice, body="mine?", attachments=[pk])

    assert caught.value.messages == [
        "That file is not one you uploaded here, or it was already sent."
    ]
    assert Message.objects.count() == 0
    assert not Attachment.objects.filter(message__isnull=False).exists()


@pytest.mark.parametrize(
    "value", [[1, 1], "abc", [True], [1.5], [{"id": 1}], list(range(1, 12)), [-1]]
)
def test_bad_attachment_lists_are_refused(group, alice, value):
    with pytest.raises(ValidationError):
        services.message_send(room=group, author=alice, body="x", attachments=value)
    assert Message.objects.count() == 0


def test_an_outsider_cannot_send_files_to_a_private_room(group, alice, carol):
    file = put(group, alice)
    with pytest.raises(RoomNotFound):
        services.message_send(room=group, author=carol, body="x", attachments=[file.pk])


def test_a_retry_with_the_same_client_id_returns_the_first_message(group, alice):
    file = put(group, alice)
    client_id = str(uuid.uuid4())
    first = services.message_send(
        room=group, author=alice, body="x", client_id=client_id, attachments=[file.pk]
    )

    again = services.message_send(
        room=group, author=alice, body="x", client_id=client_id, attachments=[file.pk]
    )

    assert not again.created and again.message.pk == first.message.pk
    assert [a.pk for a in again.message.files] == [file.pk]


def test_an_edit_keeps_the_files_and_their_names_in_the_search_text(group, alice):
    file = put(group, alice, name="plan.txt")
    sent = services.message_send(room=group, author=alice, body="old", attachments=[file.pk])

    result = services.message_edit(room=group, user=alice, message_id=sent.message.pk, body="new")

    assert Message.objects.get().search_text == "new\nplan.txt"
    assert [a.pk for a in result.message.files] == [file.pk]
    assert file.name in result.change.rendered()[0]["html"]


# --- the article ------------------------------------------------------------------------------


def test_the_article_shows_images_and_files_as_the_contract_says(group, alice):
    image = put(group, alice, png((800, 400)), 'a "quoted" <name>.png')
    file = put(group, alice, b"x" * 1536, "notes.txt")
    sent = services.message_send(room=group, author=alice, body="", attachments=[image.pk, file.pk])

    html = sent.change.rendered()[0]["html"]

    assert '<div class="attachments">' in html
    assert f'<button type="button" class="attachment-image" data-viewer="/files/{image.pk}/' in html
    assert (
        'data-name="a &quot;quoted&quot; &lt;name&gt;.png" data-testid="attachment-image">' in html
    )
    assert (
        f'<img src="/files/{image.pk}/thumbnail/" alt="a &quot;quoted&quot; &lt;name&gt;.png"'
        ' width="400" height="200" loading="lazy"></button>'
    ) in html
    assert (
        f'<a class="attachment-file" href="/files/{file.pk}/notes.txt" download="notes.txt"'
        ' data-testid="attachment-file"><span class="attachment-name">notes.txt</span>'
    ) in html
    assert '<span class="attachment-meta" data-size="1536">1.5 KB · text/plain</span></a>' in html
    # After the text, before the reactions.
    assert html.index('class="message-text"') < html.index('class="attachments"')


def test_the_article_is_the_same_from_history_as_from_the_broadcast(group, alice):
    file = put(group, alice)
    sent = services.message_send(room=group, author=alice, body="hi", attachments=[file.pk])
    broadcast = sent.change.rendered()[0]["html"]

    page = selectors.message_list_latest(room=group)
    from_history = render_to_string("chat/room_detail.html#message-oob", {"message_list": page})

    assert broadcast == from_history


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (1536, "1.5 KB"), (5 * 1024**2, "5.0 MB")],
)
def test_sizes_are_shown_in_b_kb_mb_with_one_decimal(size, text):
    assert attachments.human_size(size) == text


# --- deleting: files leave storage after commit ------------------------------------------------


def test_deleting_a_message_deletes_its_files_from_storage(
    group, alice, django_capture_on_commit_callbacks
):
    image = put(group, alice, png(), "a.png")
    sent = services.message_send(room=group, author=alice, body="x", attachments=[image.pk])
    assert len(stored_files()) == 2  # original and thumbnail

    with django_capture_on_commit_callbacks(execute=True):
        result = services.message_delete(room=group, user=alice, message_id=sent.message.pk)

    assert stored_files() == []
    assert not Attachment.objects.exists()
    row = Message.objects.get()
    assert not row.has_attachments and row.search_text == ""
    assert 'class="attachments"' not in result.change.rendered()[0]["html"]


def test_a_rolled_back_delete_keeps_the_files(group, alice, django_capture_on_commit_callbacks):
    from django.db import transaction

    file = put(group, alice)
    sent = services.message_send(room=group, author=alice, body="x", attachments=[file.pk])

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.message_delete(room=group, user=alice, message_id=sent.message.pk)
        transaction.set_rollback(True)

    assert len(stored_files()) == 1 and Attachment.objects.count() == 1


def test_deleting_a_room_deletes_its_files(group, alice, django_capture_on_commit_callbacks):
    put(group, alice)  # unsent
    sent_file = put(group, alice, png(), "a.png")
    services.message_send(room=group, author=alice, body="x", attachments=[sent_file.pk])
    assert len(stored_files()) == 3

    with django_capture_on_commit_callbacks(execute=True):
        services.room_delete(room=group, user=alice)

    assert stored_files() == [] and not Attachment.objects.exists()


def test_deleting_a_user_deletes_their_uploads_files(
    group, alice, bob, django_capture_on_commit_callbacks
):
    put(group, bob)
    file = put(group, bob)
    services.message_send(room=group, author=bob, body="x", attachments=[file.pk])
    kept = put(group, alice)

    with django_capture_on_commit_callbacks(execute=True):
        bob.delete()

    assert stored_files() == [Path(kept.file.path)]


def test_discarding_removes_ones_own_unsent_upload_only(
    group, alice, bob, django_capture_on_commit_callbacks
):
    mine, theirs = put(group, alice), put(group, bob)
    sent = put(group, alice)
    services.message_send(room=group, author=alice, body="x", attachments=[sent.pk])

    for pk in (theirs.pk, sent.pk, 999_999):
        with pytest.raises(AttachmentNotFound):
            attachments.attachment_discard(room=group, user=alice, attachment_id=pk)
    with django_capture_on_commit_callbacks(execute=True):
        attachments.attachment_discard(room=group, user=alice, attachment_id=mine.pk)

    assert set(Attachment.objects.values_list("pk", flat=True)) == {theirs.pk, sent.pk}
    assert len(stored_files()) == 2


# --- the clean-up command ---------------------------------------------------------------------


def _age(attachment, seconds):
    Attachment.objects.filter(pk=attachment.pk).update(
        created_at=timezone.now() - timezone.timedelta(seconds=seconds)
    )


def test_cleanup_deletes_unsent_uploads_older_than_the_ttl(
    group, alice, settings, capsys, django_capture_on_commit_callbacks
):
    settings.PARLEY_ATTACHMENT_UNSENT_TTL = 3600
    old, fresh, sent = put(group, alice), put(group, alice), put(group, alice)
    services.message_send(room=group, author=alice, body="x", attachments=[sent.pk])
    _age(old, 3601)
    _age(sent, 10 * 3600)
    _age(fresh, 3599)

    call_command("attachments_cleanup", "--dry-run")
    assert "1 unsent upload" in capsys.readouterr().out
    assert Attachment.objects.count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        call_command("attachments_cleanup")

    assert "Deleted 1 unsent upload" in capsys.readouterr().out
    assert set(Attachment.objects.values_list("pk", flat=True)) == {fresh.pk, sent.pk}
    assert len(stored_files()) == 2


def test_cleanup_takes_its_clock_as_an_argument(group, alice, settings):
    settings.PARLEY_ATTACHMENT_UNSENT_TTL = 3600
    put(group, alice)
    later = timezone.now() + timezone.timedelta(seconds=3601)

    assert attachments.attachments_cleanup(now=timezone.now(), dry_run=True) == 0
    assert attachments.attachments_cleanup(now=later, dry_run=True) == 1
    assert attachments.attachments_cleanup(now=later) == 1
    assert not Attachment.objects.exists()


# --- history pages: no query per message ------------------------------------------------------


def _page_queries(room):
    with CaptureQueriesContext(connection) as ctx:
        page = selectors.message_list_latest(room=room)
        render_to_string("chat/room_detail.html#message-oob", {"message_list": page})
    return len(ctx.captured_queries), page


def test_a_history_page_with_files_costs_the_same_queries_however_many_messages(
    group, alice, unlimited, settings
):
    settings.PARLEY_ATTACHMENT_RATE = (1000, 60)
    counts = []
    for count in (2, 12):
        for _ in range(count - len(Message.objects.filter(room=group))):
            file = put(group, alice, png((10, 10)), "p.png")
            services.message_send(room=group, author=alice, body="x", attachments=[file.pk])
        queries, page = _page_queries(group)
        assert sum(len(m.files) for m in page) == count
        counts.append(queries)
    assert counts[0] == counts[1], counts


def test_a_page_without_files_costs_no_query_for_them(group, alice):
    services.message_send(room=group, author=alice, body="plain")
    before, _ = _page_queries(group)
    file = put(group, alice)
    services.message_send(room=group, author=alice, body="with", attachments=[file.pk])

    after, _ = _page_queries(group)

    assert after == before + 1  # one query for the whole page's files


# --- serving ----------------------------------------------------------------------------------


@pytest.fixture
def sent_files(group, alice):
    """An image and a file sent in the private group (Alice owner, Bob member)."""
    image = put(group, alice, png(), "pic.png")
    file = put(group, alice, b"secret plans", "plans.txt")
    services.message_send(room=group, author=alice, body="", attachments=[image.pk, file.pk])
    return image, file


def _get(client, url, **headers):
    return client.get(url, **headers)


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_members_download_files_and_thumbnails_with_safe_headers(client, sent_files, request, who):
    client.force_login(request.getfixturevalue(who))
    image, file = sent_files

    response = client.get(file.url)
    assert response.status_code == 200
    assert _body(response) == b"secret plans"
    assert response["Content-Type"] == "text/plain"
    assert response["Content-Disposition"] == 'attachment; filename="plans.txt"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert "private" in response["Cache-Control"]

    picture = client.get(image.url)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    assert picture["Content-Disposition"].startswith("inline")
    assert picture["Content-Security-Policy"] == "sandbox"
    thumbnail = client.get(image.thumbnail_url)
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(_body(thumbnail))).format == "WEBP"


def test_a_private_rooms_files_are_404_for_outsiders_and_anonymous(client, sent_files, carol):
    image, file = sent_files
    urls = [file.url, image.url, image.thumbnail_url, "/files/999999/x", "/files/999999/thumbnail/"]
    for url in urls:
        assert client.get(url).status_code == 404, url  # anonymous: 404, not a login redirect
    client.force_login(carol)
    answers = [client.get(url) for url in urls]
    assert {response.status_code for response in answers} == {404}
    assert answers[0].content == answers[3].content  # hidden and missing look the same


def test_a_file_of_a_public_room_is_visible_to_any_signed_in_user(
    client, public_room, alice, carol
):
    file = put(public_room, alice)
    services.message_send(room=public_room, author=alice, body="x", attachments=[file.pk])
    client.force_login(carol)
    assert client.get(file.url).status_code == 200


def test_an_unsent_upload_is_served_to_its_uploader_only(client, group, alice, bob):
    image = put(group, alice, png(), "draft.png")
    client.force_login(bob)  # a member of the room, but not the uploader
    assert client.get(image.url).status_code == 404
    assert client.get(image.thumbnail_url).status_code == 404
    client.force_login(alice)
    assert client.get(image.url).status_code == 200
    assert client.get(image.thumbnail_url).status_code == 200


def test_a_token_authenticates_file_downloads(client, sent_files, bob, carol):
    _image, file = sent_files
    bob_key = Token.objects.create(user=bob).key
    carol_key = Token.objects.create(user=carol).key
    assert client.get(file.url, HTTP_AUTHORIZATION=f"Token {bob_key}").status_code == 200
    assert client.get(file.url, HTTP_AUTHORIZATION=f"Token {carol_key}").status_code == 404
    assert client.get(file.url, HTTP_AUTHORIZATION="Token nonsense").status_code == 404


def test_an_svg_is_never_served_inline_or_as_svg(client, public_room, alice):
    svg = put(public_room, alice, SVG, "drawing.svg")
    client.force_login(alice)

    response = client.get(svg.url)

    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Security-Policy"] == "sandbox"


def test_a_non_ascii_name_is_sent_as_rfc5987_filename(client, public_room, alice):
    file = put(public_room, alice, b"x", "Отчёт 2026.pdf")
    client.force_login(alice)

    response = client.get(file.url)

    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''%D0%9E%D1%82%D1%87%D1%91%D1%82%202026.pdf"
    )


def test_the_url_name_is_cosmetic_the_id_decides(client, public_room, alice):
    file = put(public_room, alice, b"x", "a.txt")
    client.force_login(alice)
    response = client.get(f"/files/{file.pk}/whatever.html")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="a.txt"'


def test_with_sendfile_nginx_the_bytes_are_left_to_nginx(client, sent_files, alice, settings):
    settings.PARLEY_SENDFILE = "nginx"
    image, file = sent_files
    client.force_login(alice)

    response = client.get(file.url)

    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Accel-Redirect"] == "/protected-media/" + file.file.name
    assert response["Content-Disposition"] == 'attachment; filename="plans.txt"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    thumbnail = client.get(image.thumbnail_url)
    assert thumbnail["X-Accel-Redirect"] == "/protected-media/" + image.thumbnail.name


def test_only_get_and_head_are_served(client, sent_files, alice):
    _image, file = sent_files
    client.force_login(alice)
    assert client.head(file.url).status_code == 200
    assert client.post(file.url).status_code in (403, 405)  # CSRF first, or not allowed


# --- the websocket send frame -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_send_frame_with_attachments_broadcasts_the_files(public_room, alice, bob):
    file = await database_sync_to_async(put)(public_room, alice, b"data", "data.csv")
    a, b = await joined(public_room.pk, alice), await joined(public_room.pk, bob)

    await send_json(a, {"body": "", "client_id": str(uuid.uuid4()), "attachments": [file.pk]})

    for socket in (a, b):
        html = await socket.receive_from(timeout=5)
        assert f'href="/files/{file.pk}/data.csv"' in html
    await a.disconnect()
    await b.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("value", [[999_999], "nope", [1, 1], {"id": 1}])
async def test_a_bad_attachments_field_gets_the_composer_error_and_the_socket_lives(
    public_room, alice, value
):
    a = await joined(public_room.pk, alice)

    await a.send_to(text_data=json.dumps({"body": "x", "attachments": value}))

    html = await a.receive_from(timeout=5)
    assert 'id="composer-error"' in html
    await send_json(a, {"body": "still here"})
    assert "still here" in await a.receive_from(timeout=5)
    await a.disconnect()


# --- the send path: constant queries, one message per upload under concurrency ----------------


def _send_queries(room, author, count):
    files = [put(room, author, name=f"{n}.txt") for n in range(count)]
    with CaptureQueriesContext(connection) as ctx:
        services.message_send(room=room, author=author, body="x", attachments=[f.pk for f in files])
    return len(ctx.captured_queries)


def test_sending_files_costs_the_same_queries_for_one_or_ten(group, alice, unlimited):
    assert _send_queries(group, alice, 1) == _send_queries(group, alice, 10)


def test_sending_without_files_asks_nothing_about_files(group, alice):
    with CaptureQueriesContext(connection) as ctx:
        services.message_send(room=group, author=alice, body="plain")
    assert not [q for q in ctx.captured_queries if "chat_attachment" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sends_of_one_upload_make_one_message(alice, bob):
    """Both sends pass the cheap check; the row lock inside the send decides: one message
    carries the file, the other send is refused."""
    import threading

    from django.db import connections

    room = services.room_create(name="race", creator=alice, private=True, members=["bob"])
    file = put(room, alice)
    barrier = threading.Barrier(2)
    outcomes = []
    original = services._unsent_uploads

    def checked_then_wait(*args, locked=True, **kwargs):
        found = original(*args, locked=locked, **kwargs)
        if not locked:
            barrier.wait(timeout=10)  # both passed the cheap check before either sends
        return found

    def send(body):
        try:
            services.message_send(room=room, author=alice, body=body, attachments=[file.pk])
            outcomes.append("sent")
        except ValidationError as exc:
            outcomes.append(exc.messages[0])
        finally:
            connections.close_all()

    services._unsent_uploads = checked_then_wait
    try:
        threads = [threading.Thread(target=send, args=(body,)) for body in ("one", "two")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        services._unsent_uploads = original

    assert sorted(outcomes) == [
        "That file is not one you uploaded here, or it was already sent.",
        "sent",
    ]
    assert Message.objects.filter(has_attachments=True).count() == 1
    assert Attachment.objects.get().message is not None
