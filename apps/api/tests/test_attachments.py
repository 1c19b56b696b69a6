"""The attachments API (issue 12): POST /api/rooms/<id>/attachments/, DELETE …/<aid>/, and
messages that carry files. Access owner / member / outsider / anonymous, JSON 4xx for every
bad input, the body cap of the upload route."""

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from apps.api.testing import error_of, inputs_of
from apps.chat import services
from apps.chat.models import Attachment, Message
from apps.core.tests.asgi_http import asgi_request, http_scope
from apps.profiles.tests.imaging import encode, jpeg_with_exif, png_header_only, two_tone
from project.asgi import application

pytestmark = pytest.mark.django_db

FIELDS = {"id", "name", "size", "content_type", "kind", "width", "height", "url", "thumbnail_url"}


def stored_files() -> list[Path]:
    root = Path(settings.PARLEY_ATTACHMENT_ROOT)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def post_file(client, room, content=b"hello", name="notes.txt"):
    upload = SimpleUploadedFile(name, content)
    return client.post(f"/api/rooms/{room.pk}/attachments/", {"file": upload}, format="multipart")


@pytest.fixture
def owner_member_outsider(group, as_alice, as_bob, as_carol, anon):
    return {"owner": as_alice, "member": as_bob, "outsider": as_carol, "anonymous": anon}


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 201), ("member", 201), ("outsider", 404), ("anonymous", 401)]
)
def test_upload_access(owner_member_outsider, group, who, status):
    response = post_file(owner_member_outsider[who], group)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert Attachment.objects.count() == (1 if status == 201 else 0)


def test_an_image_upload_answers_the_contract_fields(as_alice, group):
    response = post_file(as_alice, group, jpeg_with_exif(orientation=6), "cam.jpg")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == FIELDS
    attachment = Attachment.objects.get()
    assert body == {
        "id": attachment.pk,
        "name": "cam.jpg",
        "size": attachment.size,
        "content_type": "image/jpeg",
        "kind": "image",
        "width": 100,
        "height": 200,
        "url": f"http://testserver/files/{attachment.pk}/cam.jpg",
        "thumbnail_url": f"http://testserver/files/{attachment.pk}/thumbnail/",
    }


def test_a_file_upload_has_no_thumbnail(as_alice, group):
    body = post_file(as_alice, group, b"a,b\n1,2\n", "data.csv").json()

    assert body["kind"] == "file" and body["content_type"] == "text/csv"
    assert body["thumbnail_url"] is None and body["width"] is None


@pytest.mark.parametrize(
    ("content", "name", "status", "key"),
    [
        (b"", "empty.txt", 400, "file"),
        (png_header_only(50000, 50000), "bomb.png", 400, "file"),
    ],
    ids=["zero-bytes", "50000-square"],
)
def test_bad_files_are_json_4xx_and_nothing_is_stored(as_alice, group, content, name, status, key):
    response = post_file(as_alice, group, content, name)

    assert response.status_code == status
    assert key in error_of(response)["fields"]
    assert stored_files() == [] and Attachment.objects.count() == 0


def test_an_oversized_file_is_413_json(as_alice, group, settings):
    settings.PARLEY_ATTACHMENT_MAX_BYTES = 1000

    response = post_file(as_alice, group, b"x" * 1001, "big.bin")

    assert response.status_code == 413
    assert "too big" in error_of(response)["message"]
    assert stored_files() == []


@pytest.mark.parametrize("data", [{}, {"file": "not a file"}], ids=["missing", "text"])
def test_an_upload_without_a_file_is_400_json(as_alice, group, data):
    response = as_alice.post(f"/api/rooms/{group.pk}/attachments/", data, format="multipart")

    assert response.status_code == 400
    assert "file" in error_of(response)["fields"]


def test_a_json_body_is_not_an_upload(as_alice, group):
    response = as_alice.post(f"/api/rooms/{group.pk}/attachments/", {"file": 1}, format="json")
    assert response.status_code == 400 and "file" in error_of(response)["fields"]


def test_uploads_are_rate_limited_with_429(as_alice, group, settings, frozen_clock):
    settings.PARLEY_ATTACHMENT_RATE = (1, 60)
    assert post_file(as_alice, group).status_code == 201

    response = post_file(as_alice, group)

    assert response.status_code == 429
    assert "Retry-After" in response and error_of(response)["fields"] == {}


# --- sending ----------------------------------------------------------------------------------


def test_a_message_with_files_carries_them_in_the_api(as_alice, group):
    image = post_file(as_alice, group, encode(two_tone(), "PNG"), "pic.png").json()
    file = post_file(as_alice, group).json()

    response = as_alice.post(
        f"/api/rooms/{group.pk}/messages/",
        {"body": "", "attachments": [file["id"], image["id"]]},
        format="json",
    )

    assert response.status_code == 201
    sent = response.json()["attachments"]
    assert [a["id"] for a in sent] == [file["id"], image["id"]]
    assert sent[1] == image and set(sent[0]) == FIELDS
    page = as_alice.get(f"/api/rooms/{group.pk}/messages/").json()["results"]
    assert page[-1]["attachments"] == sent


@pytest.mark.parametrize(
    "attachments", [[999_999], "x", [1, 1], [None], list(range(1, 12))], ids=str
)
def test_bad_attachment_ids_are_400_json_on_the_attachments_field(as_alice, group, attachments):
    response = as_alice.post(
        f"/api/rooms/{group.pk}/messages/",
        {"body": "x", "attachments": attachments},
        format="json",
    )

    assert response.status_code == 400
    assert inputs_of(response) == ["attachments"]
    assert Message.objects.count() == 0


def test_another_users_upload_cannot_be_sent(as_alice, as_bob, group):
    theirs = post_file(as_bob, group).json()

    response = as_alice.post(
        f"/api/rooms/{group.pk}/messages/", {"attachments": [theirs["id"]]}, format="json"
    )

    assert response.status_code == 400
    assert error_of(response)["fields"]["attachments"] == [
        "That file is not one you uploaded here, or it was already sent."
    ]


def test_an_upload_cannot_be_sent_twice(as_alice, group):
    file = post_file(as_alice, group).json()
    url = f"/api/rooms/{group.pk}/messages/"
    assert as_alice.post(url, {"attachments": [file["id"]]}, format="json").status_code == 201

    again = as_alice.post(url, {"body": "again", "attachments": [file["id"]]}, format="json")

    assert again.status_code == 400 and Message.objects.count() == 1


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 201), ("member", 201), ("outsider", 404), ("anonymous", 401)]
)
def test_send_with_files_access(owner_member_outsider, group, alice, bob, who, status):
    uploader = bob if who == "member" else alice
    file = services_upload(group, uploader)

    response = owner_member_outsider[who].post(
        f"/api/rooms/{group.pk}/messages/", {"attachments": [file.pk]}, format="json"
    )

    assert response.status_code == status
    assert Message.objects.count() == (1 if status == 201 else 0)


def services_upload(room, user, content=b"hello", name="notes.txt"):
    from apps.chat.attachments import attachment_upload

    return attachment_upload(room=room, user=user, upload=SimpleUploadedFile(name, content))


# --- download access through the API's own URLs -----------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 200), ("member", 200), ("outsider", 404), ("anonymous", 404)]
)
def test_download_and_thumbnail_access(owner_member_outsider, group, alice, who, status):
    image = services_upload(group, alice, encode(two_tone(), "PNG"), "pic.png")
    services.message_send(room=group, author=alice, body="", attachments=[image.pk])
    client = owner_member_outsider[who]

    for url in (image.url, image.thumbnail_url):
        response = client.get(url)
        assert response.status_code == status, url
        if status == 200:
            body = b"".join(response.streaming_content)
            assert Image.open(io.BytesIO(body)).format in {"PNG", "WEBP"}


# --- discarding -------------------------------------------------------------------------------


def test_discarding_ones_unsent_upload_is_204(as_alice, as_bob, group):
    file = post_file(as_alice, group).json()
    url = f"/api/rooms/{group.pk}/attachments/{file['id']}/"

    assert as_bob.delete(url).status_code == 404  # not Bob's
    response = as_alice.delete(url)

    assert response.status_code == 204
    assert not Attachment.objects.exists()
    assert as_alice.delete(url).status_code == 404


def test_an_outsider_cannot_discard_in_a_private_room(as_alice, as_carol, group):
    file = post_file(as_alice, group).json()

    response = as_carol.delete(f"/api/rooms/{group.pk}/attachments/{file['id']}/")

    assert response.status_code == 404
    assert Attachment.objects.count() == 1


# --- the body cap of the upload route ---------------------------------------------------------


def _upload_scope(room_pk, length=None, path=None):
    headers = [(b"content-type", b"multipart/form-data; boundary=xyz")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    path = path or f"/api/rooms/{room_pk}/attachments/"
    return http_scope(method="POST", path=path, headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_the_upload_route_refuses_a_body_past_its_cap_while_reading_with_json(settings):
    settings.PARLEY_ATTACHMENT_MAX_BYTES = 1024 * 1024
    cap = 1024 * 1024 + 64 * 1024
    chunks = [b"x" * 64 * 1024] * 18  # no Content-Length: stopped as the bytes pass the cap

    response = await asgi_request(application, _upload_scope(1), chunks)

    assert response["status"] == 413
    assert dict(response["headers"])[b"content-type"] == b"application/json"
    assert json.loads(response["body"]) == {
        "error": {
            "code": "payload_too_large",
            "message": "The file is too big: at most 1.0 MB.",
            "fields": {},
        }
    }
    assert len(b"".join(chunks)) > cap


@pytest.mark.django_db(transaction=True)
async def test_only_the_upload_route_gets_the_larger_cap(settings):
    settings.PARLEY_HTTP_MAX_BODY = 10_000
    settings.PARLEY_ATTACHMENT_MAX_BYTES = 100_000
    length = 50_000

    elsewhere = await asgi_request(
        application, _upload_scope(1, length, path="/api/rooms/1/messages/"), [b""]
    )
    upload = await asgi_request(application, _upload_scope(1, length), [b"x" * length])

    assert elsewhere["status"] == 413
    assert dict(elsewhere["headers"])[b"content-type"] == b"application/json"
    assert upload["status"] == 401  # got through to Django (no credentials: 401)


async def test_an_unusable_content_length_under_api_is_400_json():
    scope = http_scope(
        method="POST",
        path="/api/rooms/1/attachments/",
        headers=[(b"content-length", b"12, 13")],
    )

    response = await asgi_request(application, scope, [b""])

    assert response["status"] == 400
    assert json.loads(response["body"]) == {
        "error": {"code": "parse_error", "message": "Invalid Content-Length.", "fields": {}}
    }
