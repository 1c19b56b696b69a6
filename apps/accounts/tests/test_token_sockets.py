"""Issue 13 item 5 (the handshake part): bots on the websocket with a personal access token.

``Authorization: Bearer <token>`` (or ``Token``) at the handshake authenticates a non-browser
client: accepted without an Origin header when it sends no session cookie, refused (the Origin
rule) when it does; a wrong token is an anonymous socket (4401). Revoking the token — the API,
the page, the admin's delete — deactivating its user, or its expiry passing (a controlled
clock) closes its open sockets with 4401 within 2 s, through the session-revocation path; the
hub's periodic re-check closes what a lost event missed. Full ASGI stack, on the real Redis
channel layer when REDIS_URL is set."""

import asyncio
import datetime

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.accounts.models import AccessToken
from apps.accounts.sessions import identities_still_valid
from apps.chat import fanout, realtime
from apps.chat.tests.helpers import (
    CLOSED_4401,
    HOST,
    ORIGIN,
    Socket,
    assert_alive,
    assert_closed_and_deaf,
    cookie_of,
    logged_in,
    send_json,
    socket_for,
)
from project import websocket_auth
from project.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def room_path(room) -> str:
    return f"/ws/chat/room/{room.pk}/"


async def make_token(user, **kwargs) -> tuple[AccessToken, str]:
    return await database_sync_to_async(tokens.token_create)(user=user, name="bot", **kwargs)


async def bot_socket(room, secret: str, *, scheme: str = "Bearer", extra=()) -> Socket:
    """A non-browser client: a Host, the token, no Origin, no cookie. Accepted and resumed."""
    headers = [HOST, (b"authorization", f"{scheme} {secret}".encode()), *extra]
    communicator = Socket(application, room_path(room), headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await send_json(communicator, {"type": "resume", "after_seq": 0})
    return communicator


async def handshake(room, headers) -> tuple[Socket, dict]:
    communicator = Socket(application, room_path(room), headers=headers)
    await communicator.send_input({"type": "websocket.connect"})
    return communicator, await communicator.receive_output(timeout=5)


# --- the handshake ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
async def test_a_token_is_accepted_without_an_origin_and_acts_as_its_user(
    public_room, alice, scheme
):
    token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret, scheme=scheme)

    html = await assert_alive(communicator, "beep from the bot")

    assert f'data-author="{alice.pk}"' in html
    await communicator.disconnect()
    token = await AccessToken.objects.aget(pk=token.pk)
    assert token.last_used_at is not None  # the handshake is a use


async def test_any_origin_is_ignored_for_a_token_client(public_room, alice):
    _token, secret = await make_token(alice)
    communicator = await bot_socket(
        public_room, secret, extra=[(b"origin", b"http://evil.example")]
    )
    await assert_alive(communicator)
    await communicator.disconnect()


async def test_the_user_socket_takes_a_token_too(alice):
    _token, secret = await make_token(alice)
    headers = [HOST, (b"authorization", f"Bearer {secret}".encode())]
    communicator = Socket(application, "/ws/user/", headers=headers)
    assert (await communicator.connect(timeout=5))[0]
    assert (await communicator.user_frame())["type"] == "sync"
    await communicator.disconnect()


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer pat_wrong", b"Bearer", b"Token a b", b"Bearer " + b"x" * 500, b"Bearer caf\xe9"],
)
async def test_a_wrong_token_is_accepted_then_closed_with_4401(public_room, alice, authorization):
    """No fallback, no retry loop: accepted, then 4401 (htmx and bots do not retry it)."""
    await make_token(alice)
    communicator, first = await handshake(public_room, [HOST, (b"authorization", authorization)])

    assert first["type"] == "websocket.accept"
    assert await communicator.receive_output(timeout=5) == CLOSED_4401
    await communicator.disconnect()


async def test_a_revoked_or_expired_token_is_closed_at_the_handshake(public_room, alice):
    revoked, revoked_secret = await make_token(alice)
    await database_sync_to_async(tokens.token_revoke)(user=alice, token_id=revoked.pk)
    expired, expired_secret = await make_token(
        alice, expires_at=tokens.now() + datetime.timedelta(hours=1)
    )
    await AccessToken.objects.filter(pk=expired.pk).aupdate(
        expires_at=tokens.now() - datetime.timedelta(seconds=1)
    )
    for secret in (revoked_secret, expired_secret):
        headers = [HOST, (b"authorization", f"Bearer {secret}".encode())]
        communicator, first = await handshake(public_room, headers)
        assert first["type"] == "websocket.accept"
        assert await communicator.receive_output(timeout=5) == CLOSED_4401
        await communicator.disconnect()


async def test_a_token_with_a_session_cookie_must_pass_the_origin_check(public_room, alice, bob):
    """A cookie is an ambient credential: with one, the Origin rule applies whatever else the
    handshake carries (and then the token, not the cookie, says who it is)."""
    _token, secret = await make_token(alice)
    browser = await logged_in(bob)
    cookie = (b"cookie", f"sessionid={cookie_of(browser)}".encode())
    authorization = (b"authorization", f"Bearer {secret}".encode())

    _refused, first = await handshake(public_room, [HOST, authorization, cookie])
    assert first["type"] == "websocket.close"  # before accept: HTTP 403

    communicator, first = await handshake(public_room, [HOST, ORIGIN, authorization, cookie])
    assert first["type"] == "websocket.accept"
    await send_json(communicator, {"type": "resume", "after_seq": 0})
    assert f'data-author="{alice.pk}"' in await assert_alive(communicator)
    await communicator.disconnect()


async def test_a_token_client_still_needs_an_allowed_host(public_room, alice):
    _token, secret = await make_token(alice)
    authorization = (b"authorization", f"Bearer {secret}".encode())

    _c, first = await handshake(public_room, [(b"host", b"evil.example"), authorization])

    assert first["type"] == "websocket.close"


async def test_without_a_token_a_missing_origin_is_still_refused(public_room, alice):
    browser = await logged_in(alice)
    cookie = (b"cookie", f"sessionid={cookie_of(browser)}".encode())
    basic = (b"authorization", b"Basic YWxpY2U6cHc=")  # not a token scheme

    for headers in ([HOST, cookie], [HOST, cookie, basic], [HOST]):
        _c, first = await handshake(public_room, headers)
        assert first["type"] == "websocket.close", headers


# --- revocation closes the open sockets -------------------------------------------------------


async def test_revoking_the_token_over_the_api_closes_its_sockets_only(public_room, alice):
    doomed, doomed_secret = await make_token(alice)
    _kept, kept_secret = await make_token(alice)
    doomed_socket = await bot_socket(public_room, doomed_secret)
    kept_socket = await bot_socket(public_room, kept_secret)
    session_socket = await socket_for(await logged_in(alice), public_room.pk)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {kept_secret}")

    response = await database_sync_to_async(api.delete)(f"/api/tokens/{doomed.pk}/")

    assert response.status_code == 204
    await assert_closed_and_deaf(doomed_socket)  # 4401 within 2 s, frames after it ignored
    await assert_alive(kept_socket)
    await assert_alive(session_socket)
    await kept_socket.disconnect()
    await session_socket.disconnect()


async def test_revoking_the_token_of_the_request_closes_its_socket(public_room, alice):
    _token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {secret}")

    assert (await database_sync_to_async(api.delete)("/api/auth/token/")).status_code == 204
    await assert_closed_and_deaf(communicator)


async def test_revoking_on_the_page_closes_its_sockets(public_room, alice):
    token, secret = await make_token(alice)
    sockets = [await bot_socket(public_room, secret), await bot_socket(public_room, secret)]
    browser = await logged_in(alice)

    response = await database_sync_to_async(browser.post)(f"/accounts/tokens/{token.pk}/revoke/")

    assert response.status_code == 302
    for communicator in sockets:
        await assert_closed_and_deaf(communicator)


async def test_deleting_the_row_by_any_means_closes_its_sockets(public_room, alice):
    """The admin, a shell: a queryset delete sends the same revocation."""
    token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret)

    await database_sync_to_async(AccessToken.objects.filter(pk=token.pk).delete)()

    await assert_closed_and_deaf(communicator)


async def test_deactivating_the_user_closes_their_token_sockets(public_room, alice):
    _token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret)

    def deactivate() -> None:
        user = get_user_model().objects.get(pk=alice.pk)
        user.is_active = False
        user.save()

    await database_sync_to_async(deactivate)()
    await assert_closed_and_deaf(communicator)


async def test_logging_out_a_session_leaves_token_sockets_alone(public_room, alice):
    _token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret)
    browser = await logged_in(alice)

    assert (await database_sync_to_async(browser.post)("/accounts/logout/")).status_code == 302
    await assert_alive(communicator)
    await communicator.disconnect()


# --- expiry, by a clock the test controls ----------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """tokens.now() answers ``clock.now``; the socket's expiry timer looks at it often."""

    class Clock:
        now = tokens.now()

    clock = Clock()
    monkeypatch.setattr(tokens, "now", lambda: clock.now)
    # The timer waits for the time left, capped: short here, so a jump of the clock is seen
    # at once (in production a real clock never jumps an hour).
    monkeypatch.setattr(websocket_auth, "EXPIRY_CHECK_SECONDS", 0.02)
    return clock


async def test_a_token_socket_closes_when_its_token_expires(public_room, alice, clock):
    expiring, expiring_secret = await make_token(
        alice, expires_at=clock.now + datetime.timedelta(hours=1)
    )
    _forever, forever_secret = await make_token(alice)
    expiring_socket = await bot_socket(public_room, expiring_secret)
    forever_socket = await bot_socket(public_room, forever_secret)
    clock.now += datetime.timedelta(minutes=59)
    await assert_alive(expiring_socket, "a minute left")

    clock.now += datetime.timedelta(minutes=1)

    await assert_closed_and_deaf(expiring_socket)
    await assert_alive(forever_socket)
    await forever_socket.disconnect()
    assert await AccessToken.objects.filter(pk=expiring.pk).aexists()  # expired, not deleted


def expiry_timers() -> list[asyncio.Task]:
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "_close_at_expiry" and not task.done()
    ]


async def test_the_expiry_timer_stops_with_the_socket(public_room, alice, clock):
    _token, secret = await make_token(alice, expires_at=clock.now + datetime.timedelta(hours=1))
    communicator = await bot_socket(public_room, secret)
    assert len(expiry_timers()) == 1
    _forever, forever_secret = await make_token(alice)
    forever = await bot_socket(public_room, forever_secret)
    assert len(expiry_timers()) == 1  # a token that never expires needs none

    await communicator.disconnect()

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2
    while expiry_timers() and loop.time() < deadline:
        await asyncio.sleep(0)  # loop turns until the cancellation has landed
    assert expiry_timers() == []
    await forever.disconnect()


# --- the periodic re-check --------------------------------------------------------------------


async def test_the_re_check_keeps_valid_token_sockets(public_room, alice):
    _token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret)
    await fanout.hub().verify()
    await assert_alive(communicator)
    await communicator.disconnect()


@pytest.mark.parametrize("change", ["deleted", "expired", "inactive", "other user"])
async def test_the_re_check_closes_what_a_lost_event_missed(public_room, alice, bob, change):
    token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret)
    tokens_of_alice = AccessToken.objects.filter(pk=token.pk)

    def apply() -> None:  # without signals, or with the event lost
        if change == "deleted":
            tokens_of_alice._raw_delete(tokens_of_alice.db)
        elif change == "expired":
            tokens_of_alice.update(expires_at=tokens.now() - datetime.timedelta(seconds=1))
        elif change == "inactive":
            get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
        else:
            tokens_of_alice.update(user=bob)

    await database_sync_to_async(apply)()
    await assert_alive(communicator)  # no event came
    await fanout.hub().verify()
    await assert_closed_and_deaf(communicator)


async def test_a_revocation_whose_event_was_lost_is_caught_by_the_re_check(
    public_room, alice, monkeypatch
):
    monkeypatch.setattr(realtime, "broadcast_sessions_revoked", lambda **kwargs: None)
    token, secret = await make_token(alice)
    communicator = await bot_socket(public_room, secret)
    await database_sync_to_async(tokens.token_revoke)(user=alice, token_id=token.pk)
    await assert_alive(communicator)
    await fanout.hub().verify()
    await assert_closed_and_deaf(communicator)


def test_the_re_check_costs_one_query_more_for_token_sockets(alice, bob, django_assert_num_queries):
    from django.test import Client

    identities = []
    for user in (alice, bob):
        client = Client()
        client.force_login(user)
        identities.append((cookie_of(client), user.pk))
    mine, _ = tokens.token_create(user=alice, name="a")
    theirs, _ = tokens.token_create(user=bob, name="b")
    identities += [
        (tokens.identity_key(mine.pk), alice.pk),
        (tokens.identity_key(theirs.pk), bob.pk),
        (tokens.identity_key(theirs.pk), alice.pk),  # not alice's token
        (tokens.identity_key(999999), alice.pk),
        ("token:x", alice.pk),
    ]
    with django_assert_num_queries(3):
        valid, _users = identities_still_valid(identities)
    assert valid == set(identities[:4])
