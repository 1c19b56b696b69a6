"""The text rule at every edge: HTML forms (room create, the send fallback, the profile
editor), the API and a websocket frame all hand the raw text to the service and show its
message — never a 500 (a NUL in the send fallback's body used to be a KeyError), never a
different wording."""

import json
import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.api.testing import error_of
from apps.chat.models import Message, Room
from apps.chat.tests.helpers import joined, send_json

EMPTY_BODY = "Type a message first."
EMPTY_ROOM = "Enter a room name."
UNSTORABLE = "The text contains characters that cannot be stored."
ROOM_FORBIDDEN = "A room name cannot contain control or invisible characters."
NAME_FORBIDDEN = "A display name cannot contain control or invisible characters."
BODY_FORBIDDEN = "A message cannot contain control characters or direction overrides."
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


@pytest.fixture
def api(db, alice):
    _token, secret = tokens.token_create(user=alice, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# --- HTML forms -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message", "kept"),
    [
        ("hello\x00world", UNSTORABLE, "hello\x00world"),
        (ZERO_WIDTH, EMPTY_BODY, ZERO_WIDTH),
        ("gnp\u202eexe", BODY_FORBIDDEN, "gnp\u202eexe"),
    ],
)
def test_the_send_fallback_shows_the_services_error_and_keeps_the_text(
    alice_client, public_room, body, message, kept
):
    url = reverse("chat:message_send", kwargs={"pk": public_room.pk})
    response = alice_client.post(url, {"body": body, "client_id": str(uuid.uuid4())})
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html
    assert f"{kept}</textarea>" in html  # the composer keeps what was typed
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_the_send_fallback_refuses_a_nul_in_the_client_id_without_a_500(alice_client, public_room):
    url = reverse("chat:message_send", kwargs={"pk": public_room.pk})
    response = alice_client.post(url, {"body": "hi", "client_id": "\x00"})
    assert response.status_code == 400
    assert "client_id must be a UUID." in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize(
    ("name", "message"),
    [("ops\x00", UNSTORABLE), (ZERO_WIDTH, EMPTY_ROOM), ("a\u202eb", ROOM_FORBIDDEN)],
)
def test_room_create_form_shows_the_services_error(alice_client, name, message, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    response = alice_client.post(reverse("chat:room_create"), {"name": name}, headers=headers)
    assert response.status_code == (200 if htmx else 400)
    assert message in response.content.decode()
    assert Room.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message"),
    [("Al\x00ice", UNSTORABLE), ("two\nlines", NAME_FORBIDDEN), ("a\u202eb", NAME_FORBIDDEN)],
)
def test_profile_editor_shows_the_services_error(alice_client, alice, name, message):
    response = alice_client.post(reverse("profiles:edit"), {"display_name": name})
    assert response.status_code == 400
    assert message in response.content.decode()
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "Alice"


@pytest.mark.django_db
def test_profile_editor_takes_zero_width_only_as_no_display_name(alice_client, alice):
    response = alice_client.post(reverse("profiles:edit"), {"display_name": ZERO_WIDTH})
    assert response.status_code == 302
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == ""


# --- API ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "message"), [(ZERO_WIDTH, EMPTY_ROOM), ("a\nb", ROOM_FORBIDDEN)])
def test_api_room_create_uses_the_rule(api, name, message):
    response = api.post("/api/rooms/", {"name": name}, format="json")
    assert response.status_code == 400
    assert message in json.dumps(response.json(), ensure_ascii=False)
    assert Room.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"), [(ZERO_WIDTH, EMPTY_BODY), ("x\u202dy", BODY_FORBIDDEN)]
)
def test_api_message_send_uses_the_rule(api, public_room, body, message):
    response = api.post(f"/api/rooms/{public_room.pk}/messages/", {"body": body}, format="json")
    assert response.status_code == 400
    assert message in json.dumps(response.json(), ensure_ascii=False)
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_api_profile_update_uses_the_rule(api, alice):
    response = api.patch("/api/profiles/me/", {"display_name": "x\u2066y"}, format="json")
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"display_name": [NAME_FORBIDDEN]}


# --- websocket ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("body", "message"), [(ZERO_WIDTH, EMPTY_BODY), ("x\u202ey", BODY_FORBIDDEN)]
)
async def test_a_websocket_frame_gets_the_rules_error_and_the_socket_lives(
    public_room, alice, body, message
):
    socket = await joined(public_room.pk, alice)
    await send_json(socket, {"body": body, "client_id": str(uuid.uuid4())})
    html = await socket.receive_from(timeout=5)
    assert 'id="composer-error"' in html
    assert message in html
    await send_json(socket, {"body": "visible", "client_id": str(uuid.uuid4())})
    assert "visible" in await socket.receive_from(timeout=5)
    await socket.disconnect()
