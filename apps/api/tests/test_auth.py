"""Authentication: tokens (obtain, use, reject, revoke, throttle) and sessions (CSRF enforced).
The personal access tokens' own routes and lifecycle: test_tokens.py."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.accounts.models import AccessToken
from apps.api.testing import error_of
from apps.chat.models import Message

TOKEN_URL = "/api/auth/token/"


@pytest.fixture(autouse=True)
def _frozen_login_window(monkeypatch):
    """Failed-password counters live in fixed windows: keep every test inside one."""
    from apps.core import ratelimit

    monkeypatch.setattr(ratelimit, "_clock", lambda: 1_800_000_000.0)


def test_obtained_token_authenticates_api_calls(anon, alice, password):
    response = anon.post(TOKEN_URL, {"username": "alice", "password": password}, format="json")

    assert response.status_code == 200
    body = response.json()
    key = body["token"]
    assert key.startswith("pat_")
    token = AccessToken.objects.get(user=alice)
    assert (body["id"], body["name"], body["prefix"]) == (token.pk, "API token", key[:12])

    for scheme in ("Bearer", "Token", "bearer"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
        me = client.get("/api/profiles/me/")
        assert me.status_code == 200, scheme
        assert me.json()["username"] == "alice"


def test_token_can_be_obtained_with_a_form_post_too(anon, alice, password):
    response = anon.post(TOKEN_URL, {"username": "alice", "password": password})

    assert response.status_code == 200
    assert tokens.token_authenticate(response.json()["token"]) == alice


def test_each_call_makes_a_new_named_token(anon, alice, password):
    credentials = {"username": "alice", "password": password}
    first = anon.post(TOKEN_URL, credentials, format="json").json()
    second = anon.post(TOKEN_URL, {**credentials, "name": "CI deploy"}, format="json").json()

    assert first["token"] != second["token"]
    assert first["name"] == "API token"
    assert second["name"] == "CI deploy"
    assert AccessToken.objects.filter(user=alice).count() == 2
    assert tokens.token_authenticate(first["token"]) == tokens.token_authenticate(second["token"])


def test_a_token_from_the_script_endpoint_may_expire(anon, alice, password):
    credentials = {"username": "alice", "password": password, "expires_in_days": 30}
    body = anon.post(TOKEN_URL, credentials, format="json").json()

    token = AccessToken.objects.get(pk=body["id"])
    assert 29 < (token.expires_at - token.created_at).total_seconds() / 86400 <= 30


@pytest.mark.parametrize(
    "options",
    [{"name": ""}, {"name": 5}, {"name": "x" * 65}, {"expires_in_days": 0}, {"expires_at": "soon"}],
)
def test_bad_token_options_are_400_and_cost_no_login_attempt(anon, alice, password, options):
    """Checked before the password: a script with a typo is not slowed as a guesser."""
    for _ in range(6):  # past the 5 failures per address + username that lock it out
        response = anon.post(
            TOKEN_URL, {"username": "alice", "password": "wrong", **options}, format="json"
        )
        assert response.status_code == 400
        assert "token" not in response.json()
    ok = anon.post(TOKEN_URL, {"username": "alice", "password": password}, format="json")
    assert ok.status_code == 200
    assert AccessToken.objects.count() == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": "whatever"},
        {"username": "alice"},
        {},
        ["alice", "password"],
    ],
)
def test_wrong_or_missing_credentials_give_400_json_and_no_token(anon, alice, payload):
    response = anon.post(TOKEN_URL, payload, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "token" not in response.json()
    assert not AccessToken.objects.exists()


def test_inactive_user_gets_no_token(anon, make_user, password):
    make_user("sleepy", is_active=False)

    response = anon.post(TOKEN_URL, {"username": "sleepy", "password": password}, format="json")

    assert response.status_code == 400
    assert not AccessToken.objects.exists()


def test_a_stale_token_header_does_not_stop_you_getting_a_new_token(alice, password):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.post(TOKEN_URL, {"username": "alice", "password": password}, format="json")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Token not-a-real-token",
        "Token ",
        "Token a b",
        "Bearer x",
        "Bearer",
        "bearer pat_" + "A" * 43,
        "Bearer " + "x" * 500,
        "Bearer pat_\u00e9t\u00e9",
    ],
)
def test_bad_token_gives_401_json(public_room, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.encode().decode("unicode_escape"))

    response = client.get("/api/rooms/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["fields"] == {}


def test_a_bad_token_is_401_even_with_a_valid_session(alice_client, public_room):
    """An explicit credential that fails is not quietly replaced by the session."""
    response = alice_client.get("/api/rooms/", HTTP_AUTHORIZATION="Bearer pat_nope")

    assert response.status_code == 401


def test_another_scheme_is_left_to_the_session(alice_client, public_room):
    response = alice_client.get("/api/rooms/", HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")

    assert response.status_code == 200


def test_a_token_of_a_deactivated_user_stops_working(token_client, alice):
    client = token_client(alice)
    alice.is_active = False
    alice.save()

    assert client.get("/api/rooms/").status_code == 401


def test_delete_revokes_the_token_of_the_request_only(token_client, alice):
    used, other = token_client(alice), token_client(alice)

    response = used.delete(TOKEN_URL)

    assert response.status_code == 204
    assert list(AccessToken.objects.filter(user=alice)) == [other.token]
    assert used.get("/api/rooms/").status_code == 401
    assert other.get("/api/rooms/").status_code == 200


def test_delete_with_a_session_revokes_nothing(alice_client, token_client, alice):
    token_client(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies["csrftoken"] = "b" * 32

    response = client.delete(TOKEN_URL, HTTP_X_CSRFTOKEN="b" * 32)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert AccessToken.objects.filter(user=alice).count() == 1


def test_guesses_on_one_username_from_many_addresses_do_not_lock_the_owner_out(
    anon, alice, password
):
    """Usernames are public: a limit per username alone would let anyone lock alice out. Her
    failing addresses are slowed (apps/accounts/tests/test_login_limits.py); she is not."""
    statuses = [
        anon.post(
            TOKEN_URL,
            {"username": "alice", "password": f"guess-{n}"},
            format="json",
            REMOTE_ADDR=f"10.0.0.{n}",
        ).status_code
        for n in range(11)
    ]
    owner = anon.post(
        TOKEN_URL,
        {"username": "alice", "password": password},
        format="json",
        REMOTE_ADDR="10.1.0.1",
    )

    assert statuses == [400] * 11
    assert owner.status_code == 200


def test_an_address_that_keeps_failing_on_a_username_is_refused_for_it(anon, alice, password):
    for n in range(5):
        response = anon.post(TOKEN_URL, {"username": "alice", "password": f"no-{n}"}, format="json")
        assert response.status_code == 400

    refused = anon.post(TOKEN_URL, {"username": "alice", "password": password}, format="json")

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 900


def test_password_guessing_is_throttled_per_address_across_usernames(anon, make_user):
    statuses = [
        anon.post(
            TOKEN_URL, {"username": f"victim{n}", "password": "guess"}, format="json"
        ).status_code
        for n in range(11)
    ]

    assert statuses[10] == 429


def test_a_forged_x_forwarded_for_does_not_reset_the_address_throttle(anon):
    statuses = [
        anon.post(
            TOKEN_URL,
            {"username": f"victim{n}", "password": "guess"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        ).status_code
        for n in range(11)
    ]

    assert statuses[10] == 429


def test_throttled_token_request_says_when_to_retry(anon, alice, password):
    for n in range(10):
        anon.post(TOKEN_URL, {"username": "alice", "password": f"no-{n}"}, format="json")

    # Even the right password waits: the throttle runs before credentials are checked.
    response = anon.post(TOKEN_URL, {"username": "alice", "password": password}, format="json")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert error_of(response)["fields"] == {}


def test_session_auth_without_csrf_token_is_refused(alice, public_room):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post(
        f"/api/rooms/{public_room.pk}/messages/", {"body": "hi"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "CSRF" in error_of(response)["message"]
    assert Message.objects.count() == 0


def test_session_auth_with_csrf_token_may_post(alice, public_room):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    secret = "a" * 32  # a well-formed CSRF secret; cookie and header must match
    client.cookies["csrftoken"] = secret

    response = client.post(
        f"/api/rooms/{public_room.pk}/messages/",
        {"body": "hi"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=secret,
    )

    assert response.status_code == 201


def test_session_auth_reads_without_csrf_token(alice, public_room):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.get(f"/api/rooms/{public_room.pk}/messages/").status_code == 200


def test_token_auth_needs_no_csrf_token(alice, public_room):
    _token, secret = tokens.token_create(user=alice, name="bot")
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = client.post(f"/api/rooms/{public_room.pk}/messages/", {"body": "hi"}, format="json")

    assert response.status_code == 201


def test_addresses_in_one_ipv6_64_share_the_token_throttle(anon):
    """One host owns its whole /64: rotating addresses inside it must not refill the budget."""

    def post(n: int, address: str) -> int:
        credentials = {"username": f"victim{n}", "password": "guess"}
        return anon.post(TOKEN_URL, credentials, format="json", REMOTE_ADDR=address).status_code

    statuses = [post(n, f"2001:db8:1:2::{n + 1:x}") for n in range(10)]

    assert statuses == [400] * 10
    assert post(10, "2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
    assert post(11, "2001:db8:1:3::1") == 400  # another /64 is another client


def test_the_default_throttle_counts_anonymous_ipv6_clients_per_64(anon, monkeypatch):
    """The project-wide throttle (anonymous clients on an AllowAny view) uses the same address
    rule as the token throttle and the login limits, not DRF's full-address get_ident."""
    from apps.api import throttles

    monkeypatch.setattr(throttles.UserRateThrottle, "rate", "2/min", raising=False)

    def get(address: str) -> int:
        return anon.get("/api/no-such-thing/", REMOTE_ADDR=address).status_code

    assert [get("2001:db8:5:6::1"), get("2001:db8:5:6::2")] == [404, 404]
    assert get("2001:db8:5:6:abcd::3") == 429
    assert get("2001:db8:5:7::1") == 404
