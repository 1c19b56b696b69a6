"""Errors are JSON with a 4xx status everywhere under /api/, never Django's HTML pages."""

import pytest

from apps.api.testing import error_of


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_unknown_api_path_is_a_json_404(as_alice, method):
    response = getattr(as_alice, method)("/api/no/such/thing/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


def test_missing_trailing_slash_gets_a_json_404_that_names_the_right_url(anon):
    response = anon.post("/api/rooms", {"name": "x"}, format="json")

    assert response.status_code == 404
    assert "/api/rooms/" in error_of(response)["message"]


@pytest.mark.parametrize("url", ["/api/rooms/abc/", "/api/rooms/1.5/messages/", "/api/profiles/x/"])
def test_non_numeric_ids_are_json_404(as_alice, url):
    response = as_alice.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_wrong_method_is_a_json_405(as_alice):
    response = as_alice.get("/api/dm/")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert error_of(response)["fields"] == {}


def test_too_many_form_fields_is_a_json_400(as_alice, public_room, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"f{n}": "x" for n in range(10)} | {"body": "hi"}

    response = as_alice.post(f"/api/rooms/{public_room.pk}/messages/", fields)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


def test_browsable_api_renders_html_for_a_signed_in_browser(client, alice, public_room):
    client.force_login(alice)

    response = client.get(f"/api/rooms/{public_room.pk}/messages/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"Messages" in response.content
