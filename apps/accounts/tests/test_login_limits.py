"""Item 9: password guessing is limited without letting anyone lock the owner out.

Failures count per client address + username (apps/accounts/login_limits.py). The attacker's
address is refused for the attacked username; the owner from another address, and other
usernames from the attacker's address, are not. Addresses come from PARLEY_TRUSTED_PROXY_COUNT
(ALLAUTH_TRUSTED_PROXY_COUNT / DRF NUM_PROXIES), so a forged X-Forwarded-For changes nothing.
"""

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts import login_limits
from apps.core import ratelimit

ATTACKER = "198.51.100.7"
OWNER = "203.0.113.20"
LOGIN_URL = "/accounts/login/"
TOKEN_URL = "/api/auth/token/"
TOO_MANY = "Too many failed login attempts"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.PARLEY_LOGIN_LIMITS = {
        **settings.PARLEY_LOGIN_LIMITS,
        "window": 900,
        "per_address_username": 5,
        "per_address": 30,
        "per_username": 10,
        "per_address_username_under_attack": 2,
        "reset_per_address_email": 3,
        "reset_per_email": 5,
    }
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    # The per-request throttle is not what these tests are about (it is tested in test_auth).
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
        "token": "1000/min",
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # the start of a 900 s window

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(ratelimit, "_clock", clock)
    return clock


def html_login(username, password, address, **headers):
    """POST the allauth login form; returns (response, signed-in user id or None)."""
    client = Client()
    response = client.post(
        LOGIN_URL, {"login": username, "password": password}, REMOTE_ADDR=address, **headers
    )
    return response, client.session.get(SESSION_KEY)


def token_login(username, password, address, **headers):
    return APIClient().post(
        TOKEN_URL,
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=address,
        **headers,
    )


def fail_html(username, address, times, **headers):
    for n in range(times):
        response, user_id = html_login(username, f"guess-{n}", address, **headers)
        assert user_id is None
        assert response.status_code == 200


def test_html_login_attacker_is_refused_while_owner_and_others_get_in(alice, bob, password):
    fail_html("alice", ATTACKER, 5)

    # The attacker's address is refused for alice, even with the right password.
    refused, user_id = html_login("alice", password, ATTACKER)
    assert user_id is None
    assert TOO_MANY in refused.content.decode()

    # The owner, from her own address, signs in with the right password.
    owner, owner_id = html_login("alice", password, OWNER)
    assert owner.status_code == 302
    assert owner_id == str(alice.pk)

    # Bob, from the attacker's address, is not affected.
    other, bob_id = html_login("bob", password, ATTACKER)
    assert other.status_code == 302
    assert bob_id == str(bob.pk)


def test_failures_below_the_limit_do_not_refuse_and_are_shown_as_wrong_password(alice, password):
    fail_html("alice", ATTACKER, 4)

    response, user_id = html_login("alice", password, ATTACKER)

    assert response.status_code == 302
    assert user_id == str(alice.pk)


def test_the_username_is_counted_whatever_its_case(alice, password):
    for n, spelling in enumerate(["alice", "ALICE", "Alice", " alice", "aLiCe"]):
        html_login(spelling, f"guess-{n}", ATTACKER)

    response, user_id = html_login("alice", password, ATTACKER)

    assert user_id is None
    assert TOO_MANY in response.content.decode()


def test_the_refusal_ends_with_the_window(alice, password, clock):
    fail_html("alice", ATTACKER, 5)
    assert html_login("alice", password, ATTACKER)[1] is None

    clock.now += 900

    assert html_login("alice", password, ATTACKER)[1] == str(alice.pk)


def test_a_successful_sign_in_forgets_that_addresses_failures(alice, password):
    fail_html("alice", OWNER, 4)  # the owner mistyped four times
    assert html_login("alice", password, OWNER)[1] == str(alice.pk)

    fail_html("alice", OWNER, 4)  # four more later in the same window: still let in

    assert html_login("alice", password, OWNER)[1] == str(alice.pk)


def test_token_endpoint_attacker_is_refused_while_owner_and_others_get_tokens(alice, bob, password):
    for n in range(5):
        assert token_login("alice", f"guess-{n}", ATTACKER).status_code == 400

    refused = token_login("alice", password, ATTACKER)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 900
    assert "token" not in refused.json()

    assert token_login("alice", password, OWNER).status_code == 200
    assert token_login("bob", password, ATTACKER).status_code == 200


def test_failures_on_the_token_endpoint_and_the_login_form_add_up(alice, password):
    """One budget per address + username, whichever door the guesses use."""
    for n in range(3):
        assert token_login("alice", f"guess-{n}", ATTACKER).status_code == 400
    fail_html("alice", ATTACKER, 2)

    assert token_login("alice", password, ATTACKER).status_code == 429
    assert html_login("alice", password, ATTACKER)[1] is None


def test_a_username_under_attack_slows_every_failing_address_but_lets_the_owner_in(alice, password):
    # A guesser spread over many addresses: ten failures on alice put her under attack.
    for n in range(5):
        fail_html("alice", f"10.0.0.{n}", 2)

    # Now an address gets two failures, not five...
    fail_html("alice", "10.0.1.1", 2)
    assert TOO_MANY in html_login("alice", "guess-x", "10.0.1.1")[0].content.decode()
    assert TOO_MANY in html_login("alice", password, "10.0.0.1")[0].content.decode()
    # ...while an address that has not been failing has its password checked as usual.
    assert html_login("alice", password, OWNER)[1] == str(alice.pk)
    assert token_login("alice", password, "10.0.2.2").status_code == 200


def test_password_spraying_from_one_address_is_refused_for_every_username(
    make_user, password, settings
):
    # allauth's own per-address request limit (30/min) would answer first; this is about ours.
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "1000/m/ip"}
    for n in range(30):
        html_login(f"victim{n}", "Password1", ATTACKER)
    make_user("fresh")

    response, user_id = html_login("fresh", password, ATTACKER)

    assert user_id is None
    assert TOO_MANY in response.content.decode()
    assert html_login("fresh", password, OWNER)[1] is not None


def test_a_forged_x_forwarded_for_is_ignored_without_a_trusted_proxy(alice, password):
    for n in range(5):
        html_login("alice", f"guess-{n}", ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

    # Still counted against the real peer: refused, whatever the header says.
    forged, user_id = html_login("alice", password, ATTACKER, HTTP_X_FORWARDED_FOR=OWNER)
    assert user_id is None
    assert TOO_MANY in forged.content.decode()
    api = token_login("alice", password, ATTACKER, HTTP_X_FORWARDED_FOR=OWNER)
    assert api.status_code == 429


def test_with_one_trusted_proxy_the_address_it_appended_is_counted(alice, password, settings):
    """Behind one proxy (REMOTE_ADDR is the proxy), the client is the last X-Forwarded-For
    entry, the one the proxy appended; whatever the client put before it does not count."""
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "127.0.0.1"
    for n in range(5):
        # The attacker forges a different first entry each time; the proxy appends his address.
        forwarded = f"192.0.2.{n}, {ATTACKER}"
        html_login("alice", f"guess-{n}", proxy, HTTP_X_FORWARDED_FOR=forwarded)

    refused, user_id = html_login(
        "alice", password, proxy, HTTP_X_FORWARDED_FOR=f"{OWNER}, {ATTACKER}"
    )
    assert user_id is None
    assert TOO_MANY in refused.content.decode()
    api = token_login("alice", password, proxy, HTTP_X_FORWARDED_FOR=f"{OWNER}, {ATTACKER}")
    assert api.status_code == 429
    # The owner comes through the same proxy from her own address.
    assert html_login("alice", password, proxy, HTTP_X_FORWARDED_FOR=OWNER)[1] == str(alice.pk)
    assert token_login("alice", password, proxy, HTTP_X_FORWARDED_FOR=OWNER).status_code == 200


def test_a_malformed_forwarded_address_falls_back_to_the_peer(alice, password, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2  # more proxies than entries: no 500 either
    for header in ["not-an-ip", "", "1.2.3.4"]:
        response, user_id = html_login("alice", password, OWNER, HTTP_X_FORWARDED_FOR=header)
        assert response.status_code == 302
        assert user_id == str(alice.pk)


def test_ipv6_guesses_count_per_64_prefix(alice, password):
    for n in range(5):
        html_login("alice", f"guess-{n}", f"2001:db8:1:2::{n + 1:x}")

    assert html_login("alice", password, "2001:db8:1:2:ffff::1")[1] is None
    assert html_login("alice", password, "2001:db8:1:3::1")[1] == str(alice.pk)


@pytest.fixture
def alice_with_email(alice):
    from allauth.account.models import EmailAddress

    alice.email = "alice@example.com"
    alice.save()
    EmailAddress.objects.create(user=alice, email=alice.email, primary=True, verified=True)
    return alice


def reset(address, email="alice@example.com"):
    return Client().post(reverse("account_reset_password"), {"email": email}, REMOTE_ADDR=address)


def test_password_reset_refuses_a_repeating_address_but_not_the_owner(alice_with_email):
    statuses = [reset(ATTACKER).status_code for _ in range(4)]

    assert statuses == [302, 302, 302, 429]
    assert len(mail.outbox) == 3
    owner = reset(OWNER)
    assert owner.status_code == 302
    assert len(mail.outbox) == 4
    assert mail.outbox[-1].to == ["alice@example.com"]


def test_password_reset_mails_per_address_are_capped_without_refusing_anyone(alice_with_email):
    """From many addresses the owner's mailbox gets at most five reset mails per window; later
    requests get the usual answer (nobody is refused and nothing is revealed). The owner
    already holds working reset links."""
    statuses = [reset(f"10.9.0.{n}").status_code for n in range(8)]

    assert statuses == [302] * 8
    assert len(mail.outbox) == 5
    link = mail.outbox[0].body
    assert "/accounts/password/reset/key/" in link


def test_a_username_sent_as_a_json_number_is_counted_like_the_string(make_user, password):
    """The serializer reads 123 as the username "123": so must the counting."""
    make_user("123")
    for n in range(5):
        assert token_login(123, f"guess-{n}", ATTACKER).status_code == 400

    assert token_login("123", password, ATTACKER).status_code == 429
    assert token_login(123, password, OWNER).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [{"username": "alice"}, {"username": "alice", "password": ""}, {"password": "x"}, []],
)
def test_requests_that_check_no_password_are_not_counted(alice, password, payload):
    for _ in range(6):
        response = APIClient().post(TOKEN_URL, payload, format="json", REMOTE_ADDR=ATTACKER)
        assert response.status_code == 400

    assert token_login("alice", password, ATTACKER).status_code == 200


# --- Parallel attempts (every counter is reserved before the password is checked) -----------


def in_parallel(attempts, settings) -> list[str]:
    """Run ``(address, username)`` wrong-password attempts so that all have started before any
    has finished, as parallel requests would: each one's password check starts the next.
    Returns "checked" or "refused" per attempt."""
    factory = RequestFactory()
    outcomes = [""] * len(attempts)

    def run(i: int) -> None:
        if i == len(attempts):
            return
        address, username = attempts[i]

        def check():
            outcomes[i] = "checked"
            run(i + 1)  # the next attempt starts while this one is still being checked
            return None  # wrong password

        try:
            login_limits.authenticate_counted(
                request=factory.post(LOGIN_URL, REMOTE_ADDR=address), username=username, check=check
            )
        except login_limits.RateLimited:
            outcomes[i] = "refused"
            run(i + 1)

    run(0)
    return outcomes


def test_parallel_guesses_from_one_address_cannot_overrun_the_spraying_limit(settings):
    settings.PARLEY_LOGIN_LIMITS = {**settings.PARLEY_LOGIN_LIMITS, "per_address": 3}

    outcomes = in_parallel([(ATTACKER, f"victim{n}") for n in range(5)], settings)

    assert outcomes == ["checked"] * 3 + ["refused"] * 2


def test_parallel_guesses_on_one_username_put_it_under_attack_as_they_start(
    alice, password, settings
):
    settings.PARLEY_LOGIN_LIMITS = {
        **settings.PARLEY_LOGIN_LIMITS,
        "per_username": 3,
        "per_address_username_under_attack": 1,
    }
    fail_html("alice", ATTACKER, 2)  # two earlier failures: fine while alice is not attacked

    # Two other addresses guess at the same time as the attacker's third try: the in-flight
    # guesses already count, so alice is under attack and the attacker (2 failures > 1) waits.
    outcomes = in_parallel(
        [("10.0.0.1", "alice"), ("10.0.0.2", "alice"), (ATTACKER, "alice")], settings
    )

    assert outcomes == ["checked", "checked", "refused"]
    # The owner, who has not been failing, still has her password checked.
    assert html_login("alice", password, OWNER)[1] == str(alice.pk)


def test_successful_sign_ins_give_their_reserved_slots_back(make_user, password, settings):
    settings.PARLEY_LOGIN_LIMITS = {**settings.PARLEY_LOGIN_LIMITS, "per_address": 3}
    users = [make_user(f"member{n}") for n in range(5)]  # five people behind one address

    signed_in = [html_login(user.username, password, ATTACKER)[1] for user in users]

    assert signed_in == [str(user.pk) for user in users]
    fail_html("member0", ATTACKER, 3)  # the spraying budget is still whole
    assert TOO_MANY in html_login("member1", password, ATTACKER)[0].content.decode()


def test_a_check_that_raises_counts_as_a_failure(settings):
    settings.PARLEY_LOGIN_LIMITS = {**settings.PARLEY_LOGIN_LIMITS, "per_address_username": 1}
    request = RequestFactory().post(LOGIN_URL, REMOTE_ADDR=ATTACKER)

    def broken():
        raise RuntimeError("backend failed mid-check")

    with pytest.raises(RuntimeError):
        login_limits.authenticate_counted(request=request, username="alice", check=broken)
    with pytest.raises(login_limits.RateLimited):
        login_limits.authenticate_counted(request=request, username="alice", check=lambda: None)


# --- One address rule and one place for the limits' values ------------------------------------


def test_the_ipv6_prefix_is_one_setting_for_the_login_limits_and_the_token_throttle(
    alice, password, settings
):
    settings.ALLAUTH_RATE_LIMIT_IPV6_PREFIX = 48
    for n in range(5):
        html_login("alice", f"guess-{n}", f"2001:db8:1:{n}::1")  # five /64s, one /48

    assert html_login("alice", password, "2001:db8:1:ffff::1")[1] is None
    assert token_login("alice", password, "2001:db8:1:ffff::2").status_code == 429
    assert html_login("alice", password, "2001:db8:2::1")[1] == str(alice.pk)


def test_an_ipv4_mapped_address_counts_as_the_ipv4_address(alice, password):
    fail_html("alice", ATTACKER, 5)

    assert html_login("alice", password, f"::ffff:{ATTACKER}")[1] is None
