"""Every error under /api/ (and /hooks/) is one JSON shape with a 4xx status (or a JSON 500),
``{"error": {"code", "message", "fields"}}`` (apps/api/exceptions.py), never Django's HTML
pages; the pages keep theirs."""

import json

import pytest
from django.test import Client
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from apps.api import views
from apps.api.exceptions import error_body
from apps.api.testing import error_of
from apps.chat import webhooks
from apps.chat.models import Message


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
    assert error_of(response)["code"] == "not_found"


# --- one shape for each status ---------------------------------------------------------------


def test_400_a_refused_field_names_it_in_fields_and_in_the_message(as_alice, public_room):
    response = as_alice.post(f"/api/rooms/{public_room.pk}/messages/", {"body": 7}, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["body"]
    assert error["message"] == f"body: {error['fields']['body'][0]}"


def test_400_a_service_refusal_keeps_the_service_code(as_alice, public_room, settings):
    """The chat's own rule (message_send: too long) says which rule: the same code the
    websocket's error frame carries (errors.code_of)."""
    body = "x" * (settings.PARLEY_MESSAGE_MAX_LENGTH + 1)

    response = as_alice.post(
        f"/api/rooms/{public_room.pk}/messages/", {"body": body}, format="json"
    )

    assert response.status_code == 400
    error = error_of(response)
    assert list(error["fields"]) == ["body"]
    assert error["code"] == "max_length"
    assert Message.objects.count() == 0


def test_400_a_service_code_that_only_names_the_input_is_invalid(as_alice):
    """search_messages says which input with its code ("q"): fields says it, the code is the
    generic one."""
    response = as_alice.get("/api/search/?q=")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["q"]


def test_400_an_error_about_the_whole_request_has_no_fields(as_alice, public_room):
    response = as_alice.get(f"/api/rooms/{public_room.pk}/messages/?before=5&after=1")

    assert response.status_code == 400
    assert error_of(response) == {
        "code": "invalid",
        "message": "Use one of before, after and around.",
        "fields": {},
    }


def test_400_nested_input_errors_get_dotted_field_names(as_alice, public_room):
    response = as_alice.post(
        f"/api/rooms/{public_room.pk}/messages/",
        {"body": "x", "attachments": [1, None]},
        format="json",
    )

    assert response.status_code == 400
    error = error_of(response)
    assert list(error["fields"]) == ["attachments.1"]
    assert error["message"].startswith("attachments.1: ")


@pytest.mark.parametrize(
    "body", ['{"body": ', "[[[[" * 2000, b"\xff\xfe"], ids=["truncated", "deep", "not-utf8"]
)
def test_400_malformed_json_is_a_parse_error(as_alice, public_room, body):
    response = as_alice.post(
        f"/api/rooms/{public_room.pk}/messages/", body, content_type="application/json"
    )

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "parse_error" and error["fields"] == {}


def test_400_too_many_form_fields_is_a_parse_error(as_alice, public_room, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"f{n}": "x" for n in range(10)} | {"body": "hi"}

    response = as_alice.post(f"/api/rooms/{public_room.pk}/messages/", fields)

    assert response.status_code == 400
    assert error_of(response)["code"] == "parse_error"


def test_401_without_credentials_keeps_www_authenticate(anon):
    response = anon.get("/api/rooms/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response) == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
        "fields": {},
    }


def test_401_a_bad_token_is_authentication_failed(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer nope")

    response = anon.get("/api/rooms/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["code"] == "authentication_failed"


def test_403_not_yours_is_permission_denied(as_carol, public_room, alice, send):
    message = send(public_room, alice)

    response = as_carol.patch(
        f"/api/rooms/{public_room.pk}/messages/{message.pk}/", {"body": "mine"}, format="json"
    )

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied" and error["fields"] == {}


def test_404_a_service_not_found(as_alice):
    response = as_alice.get("/api/rooms/999999/")

    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "No such room.", "fields": {}}


def test_405_keeps_allow(as_alice):
    response = as_alice.get("/api/dm/")

    assert response.status_code == 405
    assert "POST" in response["Allow"]
    error = error_of(response)
    assert error["code"] == "method_not_allowed" and error["fields"] == {}


def test_413_a_body_over_the_limit(as_alice, public_room, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100

    response = as_alice.post(
        f"/api/rooms/{public_room.pk}/messages/", {"body": "x" * 200}, format="json"
    )

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large" and error["fields"] == {}
    assert Message.objects.count() == 0


def test_415_an_unsupported_content_type(as_alice, public_room):
    response = as_alice.post(
        f"/api/rooms/{public_room.pk}/messages/", "body=hi", content_type="text/plain"
    )

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_429_keeps_retry_after(anon, alice):
    for n in range(10):
        anon.post("/api/auth/token/", {"username": "alice", "password": f"no-{n}"}, format="json")

    response = anon.post("/api/auth/token/", {"username": "a", "password": "b"}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    error = error_of(response)
    assert error["code"] == "throttled" and error["fields"] == {}


def test_429_a_service_rate_limit_says_when_once(as_alice, public_room, settings, frozen_clock):
    """RateLimited's own sentence already names the wait: DRF's is not added to it."""
    settings.PARLEY_MESSAGE_RATE = (1, 60)
    url = f"/api/rooms/{public_room.pk}/messages/"
    assert as_alice.post(url, {"body": "one"}, format="json").status_code == 201

    response = as_alice.post(url, {"body": "two"}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    error = error_of(response)
    assert error["code"] == "throttled" and error["fields"] == {}
    assert "Expected available" not in error["message"]


# --- outside DRF: Django's own error answers ---------------------------------------------------


@pytest.fixture
def browser(alice):
    """A signed-in session asking for HTML, answered even when a view raises (as in
    production: Django's handler500, not the test client re-raising)."""
    client = Client(raise_request_exception=False, HTTP_ACCEPT="text/html")
    client.force_login(alice)
    return client


def test_500_from_a_bug_under_api_is_json(browser, monkeypatch):
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.ApiRootView, "get", broken)

    response = browser.get("/api/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    error = error_of(response)
    assert error["code"] == "server_error" and error["fields"] == {}
    assert "a bug" not in response.content.decode()


def test_500_from_a_bug_in_a_webhook_is_json(client, monkeypatch):
    def broken(secret):
        raise RuntimeError("a bug")

    monkeypatch.setattr(webhooks, "webhook_lookup", broken)
    client.raise_request_exception = False

    response = client.post("/hooks/hook_x/", {"text": "hi"}, content_type="application/json")

    assert response.status_code == 500
    assert error_of(response)["code"] == "server_error"


def test_a_django_404_under_hooks_is_json(client):
    response = client.get("/hooks/a/b/", HTTP_ACCEPT="text/html")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_a_django_400_under_api_is_json(client):
    """DisallowedHost is raised by Django's middleware, before any DRF view."""
    response = client.get("/api/", HTTP_HOST="evil.example", HTTP_ACCEPT="text/html")

    assert response.status_code == 400
    assert error_of(response)["code"] == "parse_error"


def test_the_pages_keep_their_html_errors(browser, client):
    response = browser.get("/no/such/page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b'"error"' not in response.content


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("get", "/api/no/such/thing/", 404),
        ("get", "/api/rooms/999999/", 404),
        ("get", "/api/dm/", 405),
        ("post", "/api/rooms/", 403),  # a session without its CSRF token
        ("get", "/hooks/hook_x/", 405),
        ("post", "/hooks/hook_x/", 404),
    ],
)
def test_no_html_error_under_api_for_a_browser_without_the_browsable_api(
    alice, method, url, status, settings
):
    """With the browsable API off (DEBUG off: apps/core/tests/test_production_api.py runs
    that configuration), a browser asking for HTML still gets the JSON error."""
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT="text/html")
    client.force_login(alice)

    original = APIView.renderer_classes
    APIView.renderer_classes = [JSONRenderer]
    try:
        response = getattr(client, method)(url)
    finally:
        APIView.renderer_classes = original

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    error_of(response)
    assert b"<html" not in response.content.lower()


def test_an_error_body_is_compact_json(as_alice):
    response = as_alice.get("/api/rooms/999999/")

    assert json.loads(response.content) == response.json()


@pytest.mark.parametrize(
    ("detail", "fields", "message"),
    [
        ({"body": ["Too long."]}, {"body": ["Too long."]}, "body: Too long."),
        (["About the request."], {}, "About the request."),
        ({"non_field_errors": ["Whole."], "name": ["Bad."]}, {"name": ["Bad."]}, "Whole."),
        ({"members": {0: ["Not text."], 2: ["Nobody."]}}, None, "members.0: Not text."),
        ([{}, {"name": ["Required."]}], {"1.name": ["Required."]}, "1.name: Required."),
        ({"tags": ["Too many.", {"x": ["Bad."]}]}, None, "tags: Too many."),
    ],
    ids=["field", "whole", "both", "nested-dict", "many", "list-and-items"],
)
def test_error_body_flattens_nested_input_to_dotted_names(detail, fields, message):
    error = error_body(ValidationError(detail))["error"]

    assert error["code"] == "invalid"
    assert error["message"] == message
    if fields is not None:
        assert error["fields"] == fields
    assert all(
        isinstance(messages, list) and all(isinstance(m, str) for m in messages)
        for messages in error["fields"].values()
    )


def test_413_a_webhook_body_over_the_limit(client, public_room, alice, settings):
    _, secret = webhooks.webhook_create(room=public_room, user=alice, name="Deploys")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50

    response = client.post(
        f"/hooks/{secret}/", json.dumps({"text": "x" * 100}), content_type="application/json"
    )

    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert Message.objects.count() == 0
