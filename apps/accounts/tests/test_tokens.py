"""Personal access tokens (issue 13): the lifecycle through the services (shown once, only a
hash stored, expiry by a controlled clock, revoke, last use recorded at most once a minute),
the migration of DRF authtoken keys, and the "API tokens" page."""

import datetime
import hashlib
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.accounts.models import AccessToken
from apps.core.ratelimit import RateLimited

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def clock(monkeypatch):
    """``clock.now`` is what tokens.now() answers; tests move it."""

    class Clock:
        now = T0

        def advance(self, **delta) -> None:
            self.now += datetime.timedelta(**delta)

    clock = Clock()
    monkeypatch.setattr(tokens, "now", lambda: clock.now)
    return clock


def row_values(token: AccessToken) -> list[str]:
    """Every column of the token's row, as text."""
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(AccessToken._meta.db_table)
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [token.pk])
        return [str(value) for value in cursor.fetchone()]


# --- the lifecycle ------------------------------------------------------------------------


def test_a_new_token_authenticates_and_only_its_hash_is_stored(alice, clock):
    token, secret = tokens.token_create(user=alice, name="Deploy bot")

    assert secret.startswith("pat_") and len(secret) == 4 + 43
    assert tokens.token_authenticate(secret) == alice
    assert token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:12]
    # The secret is in no column of the row (the prefix is its first 12 characters only).
    for value in row_values(token):
        assert secret not in value
        assert secret[12:20] not in value
    assert token.created_at == T0 and token.expires_at is None


def test_two_tokens_have_different_secrets_and_each_is_its_own(alice, bob):
    (a, secret_a), (b, secret_b) = (
        tokens.token_create(user=alice, name="a"),
        tokens.token_create(user=bob, name="b"),
    )

    assert secret_a != secret_b
    assert tokens.token_lookup(secret_a) == a
    assert tokens.token_lookup(secret_b) == b


@pytest.mark.parametrize(
    "secret", ["", "pat_", "pat_wrong", None, 5, "x" * 1000, "pat_" + "A" * 43]
)
def test_anything_else_authenticates_nobody(alice, secret):
    tokens.token_create(user=alice, name="real")

    assert tokens.token_authenticate(secret) is None


def test_a_token_stops_at_its_expiry_by_the_clock(alice, clock):
    _token, secret = tokens.token_create(
        user=alice, name="short", expires_at=T0 + datetime.timedelta(days=30)
    )
    clock.advance(days=30, seconds=-1)
    assert tokens.token_authenticate(secret) == alice
    clock.advance(seconds=1)
    assert tokens.token_authenticate(secret) is None


def test_a_revoked_token_is_gone(alice, bob):
    token, secret = tokens.token_create(user=alice, name="old")

    with pytest.raises(tokens.TokenNotFound):
        tokens.token_revoke(user=bob, token_id=token.pk)  # not bob's
    assert tokens.token_authenticate(secret) == alice

    tokens.token_revoke(user=alice, token_id=token.pk)
    assert not AccessToken.objects.exists()
    assert tokens.token_authenticate(secret) is None
    with pytest.raises(tokens.TokenNotFound):
        tokens.token_revoke(user=alice, token_id=token.pk)


def test_a_deactivated_users_token_authenticates_nobody(alice):
    _token, secret = tokens.token_create(user=alice, name="bot")
    alice.is_active = False
    alice.save()

    assert tokens.token_authenticate(secret) is None


def test_last_use_is_recorded_at_most_once_a_minute(alice, clock, django_assert_num_queries):
    token, secret = tokens.token_create(user=alice, name="busy")
    assert token.last_used_at is None

    with django_assert_num_queries(2):  # the lookup, and the first use written
        tokens.token_authenticate(secret)
    token.refresh_from_db()
    assert token.last_used_at == T0

    clock.advance(seconds=59)
    with django_assert_num_queries(1):  # the lookup only: no write within the minute
        tokens.token_authenticate(secret)
    token.refresh_from_db()
    assert token.last_used_at == T0

    clock.advance(seconds=1)
    tokens.token_authenticate(secret)
    token.refresh_from_db()
    assert token.last_used_at == T0 + datetime.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Enter a name for the token."),
        ("   ", "Enter a name for the token."),
        ("x" * 65, "at most 64 characters"),
        ("bad\u202ename", "control or invisible"),
        (None, "Enter a name for the token."),
    ],
)
def test_a_token_needs_a_short_visible_name(alice, name, message):
    with pytest.raises(ValidationError, match=message):
        tokens.token_create(user=alice, name=name)
    assert not AccessToken.objects.exists()


def test_the_name_is_stripped_and_may_be_64_characters(alice):
    token, _ = tokens.token_create(user=alice, name="  " + "n" * 64 + " ")
    assert token.name == "n" * 64


@pytest.mark.parametrize(
    "expires_at",
    [
        T0,
        T0 - datetime.timedelta(days=1),
        T0 + datetime.timedelta(days=3651),
        datetime.datetime(2027, 1, 1),  # naive
    ],
)
def test_an_expiry_must_be_an_aware_future_time_within_ten_years(alice, clock, expires_at):
    with pytest.raises(ValidationError) as caught:
        tokens.token_create(user=alice, name="x", expires_at=expires_at)
    assert caught.value.code == "expires_at"


def test_creation_is_rate_limited_per_user(alice, bob, settings, frozen_clock):
    settings.PARLEY_TOKEN_CREATE_RATE = (3, 3600)
    for n in range(3):
        tokens.token_create(user=alice, name=f"t{n}")

    with pytest.raises(RateLimited) as caught:
        tokens.token_create(user=alice, name="one more")
    assert "Too many new tokens" in caught.value.message
    assert AccessToken.objects.filter(user=alice).count() == 3
    tokens.token_create(user=bob, name="bob's own budget")


def test_a_user_holds_a_bounded_number_of_tokens(alice, settings):
    settings.PARLEY_TOKENS_PER_USER_MAX = 2
    first, _ = tokens.token_create(user=alice, name="1")
    tokens.token_create(user=alice, name="2")

    with pytest.raises(ValidationError, match="revoke one first"):
        tokens.token_create(user=alice, name="3")
    tokens.token_revoke(user=alice, token_id=first.pk)
    tokens.token_create(user=alice, name="3")


# --- DRF authtoken keys ------------------------------------------------------------------------


@pytest.fixture
def old_authtoken_table(alice, bob):
    """The table DRF's authtoken app left in a database made before this release, with a key
    of alice's and one of bob's (created in this test's transaction: rolled back after)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) NOT NULL PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id bigint NOT NULL UNIQUE)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) NOT NULL PRIMARY KEY, "
            "created datetime NOT NULL, user_id bigint NOT NULL UNIQUE)"
        )
    keys = {alice: "a" * 20 + "0123456789abcdef0123", bob: "b" * 40}
    with connection.cursor() as cursor:
        for user, key in keys.items():
            cursor.execute(
                "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
                [key, T0, user.pk],
            )
    return keys


def _run_migration_function():
    from importlib import import_module

    from django.apps import apps

    migration = import_module("apps.accounts.migrations.0003_migrate_authtoken_keys")
    # All it uses of the schema editor is its connection (SQLite's editor cannot open inside
    # the test's transaction); the current models stand in for the historical ones.
    return migration.copy_authtoken_keys(apps, SimpleNamespace(connection=connection))


def test_old_authtoken_keys_become_tokens_that_keep_working(old_authtoken_table, alice, bob):
    assert _run_migration_function() == 2

    for user, key in old_authtoken_table.items():
        token = AccessToken.objects.get(user=user)
        assert (token.name, token.prefix, token.created_at) == ("Migrated token", key[:8], T0)
        assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")  # the old scripts, unchanged
        assert client.get("/api/profiles/me/").json()["username"] == user.username
    # Running it again copies nothing twice.
    assert _run_migration_function() == 0
    assert AccessToken.objects.count() == 2


def test_without_the_old_table_the_migration_does_nothing(alice):
    assert "authtoken_token" not in connection.introspection.table_names()
    assert _run_migration_function() == 0


def test_drf_authtoken_is_no_longer_installed(settings):
    assert "rest_framework.authtoken" not in settings.INSTALLED_APPS
    assert "rest_framework.authentication.TokenAuthentication" not in str(
        settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
    )


def test_a_view_still_using_drf_token_authentication_fails_the_system_check(settings):
    """Another helper's view naming DRF's class would answer 500: the check says so first."""
    from django.urls import path
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.views import APIView

    from apps.api.authentication import drf_token_authentication_is_not_used

    assert drf_token_authentication_is_not_used(None) == []

    class Legacy(APIView):
        authentication_classes = [TokenAuthentication]

    import types

    urlconf = types.ModuleType("legacy_urls")
    urlconf.urlpatterns = [path("legacy/", Legacy.as_view())]
    settings.ROOT_URLCONF = urlconf
    errors = drf_token_authentication_is_not_used(None)
    assert [error.id for error in errors] == ["parley.E013"]
    assert "Legacy" in errors[0].msg


# --- the page ------------------------------------------------------------------------------------

PAGE = "/accounts/tokens/"


def test_the_page_needs_a_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert client.post(PAGE, {"name": "x", "expiry": "30"}).status_code == 302
    assert not AccessToken.objects.exists()


def test_the_user_menu_links_to_the_page(alice_client):
    html = alice_client.get(reverse("profiles:edit")).content.decode()
    assert f'href="{PAGE}"' in html
    assert "API tokens" in html


def test_creating_on_the_page_shows_the_secret_once(alice_client, alice, clock):
    response = alice_client.post(PAGE, {"name": "Deploy bot", "expiry": "90"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = AccessToken.objects.get(user=alice)
    secret = response.context["secret"]
    html = response.content.decode()
    assert f'value="{secret}"' in html
    assert "will not be shown again" in html
    assert tokens.token_authenticate(secret) == alice
    assert token.name == "Deploy bot"
    assert token.expires_at == T0 + datetime.timedelta(days=90)
    # The page again: listed by name and prefix, the secret nowhere.
    again = alice_client.get(PAGE).content.decode()
    assert "Deploy bot" in again and f"{token.prefix}…" in again
    assert secret not in again
    assert "will not be shown again" not in again


def test_never_means_no_expiry(alice_client, alice):
    alice_client.post(PAGE, {"name": "forever", "expiry": "never"})
    assert AccessToken.objects.get(user=alice).expires_at is None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "", "expiry": "30"}, "This field is required."),
        ({"name": "   ", "expiry": "30"}, "Enter a name for the token."),
        ({"name": "x" * 65, "expiry": "30"}, "at most 64 characters"),
        ({"name": "ok", "expiry": "7"}, "Select a valid choice."),
    ],
)
def test_a_bad_form_is_400_with_the_error_and_makes_nothing(alice_client, data, error):
    response = alice_client.post(PAGE, data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not AccessToken.objects.exists()
    assert response.context["secret"] is None


def test_too_many_new_tokens_on_the_page_is_a_form_error(alice_client, settings, frozen_clock):
    settings.PARLEY_TOKEN_CREATE_RATE = (1, 3600)
    alice_client.post(PAGE, {"name": "one", "expiry": "30"})
    response = alice_client.post(PAGE, {"name": "two", "expiry": "30"})
    assert response.status_code == 400
    assert "Too many new tokens" in response.content.decode()


def test_the_list_shows_only_your_tokens_with_their_dates(alice_client, alice, bob, clock):
    mine, _ = tokens.token_create(user=alice, name="mine", expires_at=T0 + datetime.timedelta(1))
    tokens.token_create(user=bob, name="bobs secret bot")
    clock.advance(days=2)  # mine has expired: still listed, marked, revocable

    html = alice_client.get(PAGE).content.decode()
    assert "mine" in html and "Expired" in html
    assert "bobs secret bot" not in html
    assert reverse("accounts:token_revoke", args=[mine.pk]) in html


def test_the_last_use_shows_as_just_now_then_as_time_ago(alice_client, alice, clock):
    _token, secret = tokens.token_create(user=alice, name="used")
    assert "Never" in alice_client.get(PAGE).content.decode()
    tokens.token_authenticate(secret)

    assert "just now" in alice_client.get(PAGE).content.decode()
    clock.advance(hours=3)
    assert "3\xa0hours ago" in alice_client.get(PAGE).content.decode()


def test_revoking_asks_first_then_revokes_with_a_post(alice_client, alice):
    token, secret = tokens.token_create(user=alice, name="to go")
    url = reverse("accounts:token_revoke", args=[token.pk])

    confirm = alice_client.get(url)
    assert confirm.status_code == 200
    assert "Revoke “to go”?" in confirm.content.decode()
    assert AccessToken.objects.filter(pk=token.pk).exists()  # a GET changes nothing

    response = alice_client.post(url)
    assert response.status_code == 302 and response["Location"] == PAGE
    assert not AccessToken.objects.filter(pk=token.pk).exists()
    assert tokens.token_authenticate(secret) is None
    assert "was revoked" in alice_client.get(PAGE).content.decode()


def test_someone_elses_token_cannot_be_revoked_on_the_page(alice_client, bob):
    token, _ = tokens.token_create(user=bob, name="bob's")
    url = reverse("accounts:token_revoke", args=[token.pk])

    assert alice_client.get(url).status_code == 404
    assert alice_client.post(url).status_code == 404
    assert AccessToken.objects.filter(pk=token.pk).exists()


def test_the_page_posts_need_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    token, _ = tokens.token_create(user=alice, name="kept")

    assert client.post(PAGE, {"name": "x", "expiry": "30"}).status_code == 403
    assert client.post(reverse("accounts:token_revoke", args=[token.pk])).status_code == 403
    assert list(AccessToken.objects.all()) == [token]


def test_the_pages_keep_the_strict_csp(alice_client, alice):
    from apps.chat.tests.test_csp import assert_strict_policy, our_script_nonces, scan

    token, _ = tokens.token_create(user=alice, name="x")
    for response in (
        alice_client.post(PAGE, {"name": "shown", "expiry": "30"}),
        alice_client.get(reverse("accounts:token_revoke", args=[token.pk])),
    ):
        nonce = assert_strict_policy(response, "tokens page")
        page = scan(response.content.decode())
        assert page.problems == []
        assert our_script_nonces(page) == [nonce] * 3
