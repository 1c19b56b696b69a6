"""Item 3: the Django admin is off unless PARLEY_ADMIN=1, and when on it signs in only through
the allauth login (so through allauth's rate limits), never through its own password form."""

import importlib

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import clear_url_caches, reverse

import project.urls


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_setting(settings):
    """``admin_setting(True/False)``: set PARLEY_ADMIN and rebuild the URLconf the way a server
    start does (project.urls reads the setting at import)."""

    def apply(enabled: bool) -> None:
        settings.PARLEY_ADMIN = enabled
        clear_url_caches()
        importlib.reload(project.urls)

    yield apply
    settings.PARLEY_ADMIN = False
    clear_url_caches()
    importlib.reload(project.urls)


@pytest.fixture
def staff(make_user):
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.mark.parametrize("path", ["/admin/", "/admin/login/", "/admin/accounts/user/"])
def test_the_admin_is_not_routed_by_default(admin_setting, staff, client, path):
    admin_setting(False)

    assert client.get(path).status_code == 404
    client.force_login(staff)  # not even for staff
    assert client.get(path).status_code == 404


def test_posting_to_the_admin_login_when_off_is_a_404_and_signs_nobody_in(
    admin_setting, staff, password
):
    admin_setting(False)
    client = Client()

    response = client.post("/admin/login/", {"username": "root", "password": password})

    assert response.status_code == 404
    assert SESSION_KEY not in client.session


def test_when_on_an_anonymous_visit_goes_to_the_allauth_login_with_next(admin_setting, client):
    admin_setting(True)

    admin_index = client.get("/admin/", follow=True)

    # /admin/ → /admin/login/?next=/admin/ → /accounts/login/?next=/admin/
    assert admin_index.redirect_chain[-1][0] == f"{reverse('account_login')}?next=/admin/"
    assert admin_index.status_code == 200
    direct = client.get("/admin/login/?next=/admin/accounts/user/")
    assert direct.status_code == 302
    assert direct["Location"] == f"{reverse('account_login')}?next=/admin/accounts/user/"


def test_when_on_the_admin_password_form_authenticates_nobody(admin_setting, staff, password):
    admin_setting(True)
    client = Client()

    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": password})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert SESSION_KEY not in client.session
    assert client.get("/admin/").status_code == 302  # still anonymous


def test_when_on_staff_sign_in_through_allauth_and_land_in_the_admin(
    admin_setting, staff, password
):
    admin_setting(True)
    client = Client()

    response = client.post(
        f"{reverse('account_login')}?next=/admin/", {"login": "root", "password": password}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/accounts/user/").status_code == 200
    # Signed in, the admin login page just passes through.
    assert client.get("/admin/login/?next=/admin/accounts/user/")["Location"] == (
        "/admin/accounts/user/"
    )


def test_when_on_the_admin_login_goes_through_allauths_login_rate_limit(
    admin_setting, staff, password, settings
):
    """The lock-out rules of the allauth login apply to staff too: guessing a staff password
    through the admin is not possible, and through allauth it is limited."""
    admin_setting(True)
    limits = getattr(settings, "ACCOUNT_RATE_LIMITS", {})
    settings.ACCOUNT_RATE_LIMITS = {**limits, "login": "3/m/ip"}
    client = Client()
    url = f"{reverse('account_login')}?next=/admin/"

    statuses = [
        client.post(url, {"login": "root", "password": f"guess-{n}"}).status_code for n in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


def test_when_on_a_signed_in_non_staff_user_is_refused_not_looped(admin_setting, make_user, client):
    admin_setting(True)
    client.force_login(make_user("plain"))

    assert client.get("/admin/login/?next=/admin/").status_code == 403
    assert client.get("/admin/", follow=True).status_code == 403


def test_when_on_an_offsite_next_is_ignored(admin_setting, staff, client):
    admin_setting(True)
    client.force_login(staff)

    response = client.get("/admin/login/?next=https://evil.example/")

    assert response["Location"] == "/admin/"


def test_staff_see_tokens_without_secrets_and_may_only_delete_them(admin_setting, staff, alice):
    """Issue 13: the admin lists tokens (name, owner, prefix, dates) and revokes by deleting;
    it cannot make one (only the owner is ever shown a secret) nor change one."""
    from apps.accounts import tokens
    from apps.accounts.models import AccessToken

    admin_setting(True)
    token, secret = tokens.token_create(user=alice, name="alice's bot")
    client = Client()
    client.force_login(staff)

    listing = client.get("/admin/accounts/accesstoken/").content.decode()
    assert "alice&#x27;s bot" in listing and token.prefix in listing
    assert secret not in listing and token.key_hash not in listing
    assert client.get("/admin/accounts/accesstoken/add/").status_code == 403
    detail = client.get(f"/admin/accounts/accesstoken/{token.pk}/change/").content.decode()
    assert token.key_hash not in detail
    response = client.post(f"/admin/accounts/accesstoken/{token.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not AccessToken.objects.exists()
    assert tokens.token_authenticate(secret) is None
