"""``/api/tokens/``: make (the secret in the 201 only), list (never a secret), show and revoke
personal access tokens; another user's token is 404; every refusal is JSON."""

import datetime

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.accounts.models import AccessToken
from apps.api.testing import error_of

URL = "/api/tokens/"
FIELDS = {"id", "name", "prefix", "created_at", "last_used_at", "expires_at"}


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_post_makes_a_token_and_shows_its_secret_once(as_alice, alice):
    response = as_alice.post(URL, {"name": "Deploy bot"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == FIELDS | {"token"}
    assert body["name"] == "Deploy bot" and body["expires_at"] is None
    assert body["prefix"] == body["token"][:12]
    assert bearer(body["token"]).get("/api/profiles/me/").json()["username"] == "alice"
    # Listed and shown without it from now on.
    listed = as_alice.get(URL).json()["results"]
    assert body["token"] not in str(listed)
    assert all(set(item) == FIELDS for item in listed)
    shown = as_alice.get(f"{URL}{body['id']}/").json()
    assert set(shown) == FIELDS
    assert AccessToken.objects.get(pk=body["id"]).user == alice


def test_an_expiry_in_days_or_at_a_time(as_alice, monkeypatch):
    moment = tokens.now()
    monkeypatch.setattr(tokens, "now", lambda: moment)
    in_days = as_alice.post(URL, {"name": "a", "expires_in_days": 30}, format="json").json()
    at = as_alice.post(
        URL, {"name": "b", "expires_at": "2030-01-01T00:00:00Z"}, format="json"
    ).json()

    made = AccessToken.objects.get(pk=in_days["id"])
    assert made.expires_at - made.created_at == datetime.timedelta(days=30)
    assert at["expires_at"] == "2030-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "ok", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": 3651}, "expires_in_days"),
        ({"name": "ok", "expires_in_days": "soon"}, "expires_in_days"),
        ({"name": "ok", "expires_at": "yesterday"}, "expires_at"),
        ({"name": "ok", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "ok", "expires_at": "2030-01-01", "expires_in_days": 3}, "expires_in_days"),
    ],
)
def test_bad_input_is_400_json_about_the_field(as_alice, payload, field):
    response = as_alice.post(URL, payload, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert field in error_of(response)["fields"], response.json()
    assert AccessToken.objects.count() == 1  # as_alice's own


def test_too_many_new_tokens_is_429_with_retry_after(frozen_clock, as_alice, settings):
    settings.PARLEY_TOKEN_CREATE_RATE = (2, 3600)  # as_alice's own token was the first
    assert as_alice.post(URL, {"name": "2"}, format="json").status_code == 201

    response = as_alice.post(URL, {"name": "3"}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many new tokens" in error_of(response)["message"]


def test_the_list_is_yours_only_newest_first(as_alice, alice, bob):
    tokens.token_create(user=bob, name="bob's")
    tokens.token_create(user=alice, name="newer")

    names = [item["name"] for item in as_alice.get(URL).json()["results"]]

    assert names == ["newer", "test client"]


def test_delete_revokes_it(as_alice, alice):
    token, secret = tokens.token_create(user=alice, name="doomed")

    response = as_alice.delete(f"{URL}{token.pk}/")

    assert response.status_code == 204
    assert not AccessToken.objects.filter(pk=token.pk).exists()
    assert bearer(secret).get("/api/rooms/").status_code == 401
    assert as_alice.get(f"{URL}{token.pk}/").status_code == 404


@pytest.mark.parametrize("method", ["get", "delete"])
def test_someone_elses_token_is_404_like_a_missing_one(as_alice, bob, method):
    theirs, _ = tokens.token_create(user=bob, name="bob's")

    other = getattr(as_alice, method)(f"{URL}{theirs.pk}/")
    missing = getattr(as_alice, method)(f"{URL}{theirs.pk + 1000}/")

    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    assert AccessToken.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_anonymous_gets_401_with_the_bearer_challenge(anon, alice, method):
    token, _ = tokens.token_create(user=alice, name="x")
    url = URL if method != "delete" else f"{URL}{token.pk}/"

    response = getattr(anon, method)(url, {"name": "x"}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert AccessToken.objects.count() == 1


@pytest.mark.parametrize("state", ["expired", "revoked", "deactivated"])
def test_a_token_that_stopped_is_401_json(alice, monkeypatch, state):
    token, secret = tokens.token_create(
        user=alice, name="x", expires_at=tokens.now() + datetime.timedelta(days=1)
    )
    client = bearer(secret)
    assert client.get("/api/rooms/").status_code == 200
    if state == "expired":
        later = tokens.now() + datetime.timedelta(days=1)
        monkeypatch.setattr(tokens, "now", lambda: later)
    elif state == "revoked":
        tokens.token_revoke(user=alice, token_id=token.pk)
    else:
        alice.is_active = False
        alice.save()

    response = client.get("/api/rooms/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["message"] == "Invalid, expired or revoked token."


def test_a_session_may_manage_tokens_too_with_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    refused = client.post(URL, {"name": "x"}, content_type="application/json")
    client.cookies["csrftoken"] = "c" * 32
    made = client.post(
        URL, {"name": "x"}, content_type="application/json", HTTP_X_CSRFTOKEN="c" * 32
    )

    assert refused.status_code == 403
    assert made.status_code == 201


def test_requests_with_a_token_record_its_last_use(alice):
    token, secret = tokens.token_create(user=alice, name="fresh")
    assert token.last_used_at is None

    bearer(secret).get(URL)

    token.refresh_from_db()
    assert token.last_used_at is not None
    listed = bearer(secret).get(URL).json()["results"][0]
    assert listed["last_used_at"] == token.last_used_at.isoformat().replace("+00:00", "Z")
