"""Issue #8 item 1, at the edges of time: a revocation that arrives while the hub's re-check
waits on the database, or while a socket is between its handshake and the hub, and where the
request's revocations are published.

Each event is made to happen at that moment by running it inside the step it must overlap
(the re-check's query, the connect's room query), and waiting for the hub to have handled it
(a threading.Event set by the hub), never for a fixed time."""

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from apps.chat import fanout, realtime, selectors
from project.asgi import application

from .helpers import (
    HOST,
    ORIGIN,
    assert_alive,
    assert_closed_and_deaf,
    cookie_of,
    logged_in,
    socket_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a-new-long-passphrase"


def hub_handled(monkeypatch, wanted) -> threading.Event:
    """Set once this process's hub has applied a user.revoke event for which ``wanted(event)``
    is true (a threading.Event: the database thread waits on it)."""
    handled = threading.Event()
    real = fanout.Hub.revoke

    def spy(self, event):
        real(self, event)
        if wanted(event):
            handled.set()

    monkeypatch.setattr(fanout.Hub, "revoke", spy)
    return handled


def re_checked(monkeypatch) -> asyncio.Event:
    """Set each time a hub re-check has finished."""
    done = asyncio.Event()
    real = fanout.Hub.verify

    async def spy(self, sockets=None):
        await real(self, sockets)
        done.set()

    monkeypatch.setattr(fanout.Hub, "verify", spy)
    return done


async def test_a_password_change_during_the_re_check_keeps_the_changing_socket(
    public_room, alice, password, monkeypatch
):
    """The re-check read the sockets' keys, then waited on the database; meanwhile the
    password changed and the changing socket learnt its new key. The query said the old key
    is gone: that must not close the socket, whose session is alive under its new key."""
    changer, elsewhere = await logged_in(alice), await logged_in(alice)
    changer_socket = await socket_for(changer, public_room.pk)
    elsewhere_socket = await socket_for(elsewhere, public_room.pk)
    rekeyed = hub_handled(monkeypatch, lambda event: bool(event.get("keep")))
    real_check = fanout.identities_still_valid

    def password_changes_meanwhile(identities):
        response = changer.post(
            "/accounts/password/change/",
            {"oldpassword": password, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert response.status_code == 302
        assert rekeyed.wait(5)  # the hub gave the changing socket its new key
        return real_check(identities)

    monkeypatch.setattr(fanout, "identities_still_valid", password_changes_meanwhile)
    await fanout.hub().verify()
    await assert_closed_and_deaf(elsewhere_socket)
    await assert_alive(changer_socket)
    await changer_socket.disconnect()


async def test_a_logout_between_the_handshake_and_the_hub_closes_the_socket(
    public_room, alice, bob, monkeypatch
):
    """The handshake read the session; the logout's event reaches the hub before the socket
    is registered there (during its room query), so it finds no socket to close. The hub
    remembers it, and the joining socket is re-checked and closed."""
    bob_socket = await socket_for(await logged_in(bob), public_room.pk)  # the hub listens
    browser = await logged_in(alice)
    revoked = hub_handled(monkeypatch, lambda event: event.get("user") == alice.pk)
    real_room_get = selectors.room_get_for_user

    def logged_out_meanwhile(**kwargs):
        room = real_room_get(**kwargs)
        assert browser.post("/accounts/logout/").status_code == 302
        assert revoked.wait(5)  # handled by the hub while no socket of alice is there
        return room

    monkeypatch.setattr(selectors, "room_get_for_user", logged_out_meanwhile)
    cookie = (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie_of(browser)}".encode())
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/room/{public_room.pk}/", headers=[HOST, ORIGIN, cookie]
    )
    assert await communicator.connect(timeout=5) == (True, None)
    await assert_closed_and_deaf(communicator)
    await assert_alive(bob_socket)
    await bob_socket.disconnect()


async def test_a_session_logged_in_after_a_recent_password_change_stays_open(
    public_room, alice, bob, monkeypatch
):
    """ "Every session of the user" matches a socket of a session made after the change too;
    the hub re-checks such a socket rather than closing it, and the new session is valid."""
    bob_socket = await socket_for(await logged_in(bob), public_room.pk)  # the hub listens
    revoked = hub_handled(monkeypatch, lambda event: event.get("user") == alice.pk)

    def change() -> None:
        user = get_user_model().objects.get(pk=alice.pk)
        user.set_password(NEW_PASSWORD)
        user.save()

    await database_sync_to_async(change)()
    assert await asyncio.to_thread(revoked.wait, 5)
    checked = re_checked(monkeypatch)
    fresh = await database_sync_to_async(get_user_model().objects.get)(pk=alice.pk)
    communicator = await socket_for(await logged_in(fresh), public_room.pk)
    await asyncio.wait_for(checked.wait(), 5)
    await assert_alive(communicator)
    await communicator.disconnect()
    await bob_socket.disconnect()


async def test_under_asgi_the_revocation_is_published_off_the_database_thread(
    public_room, alice, monkeypatch
):
    """With Redis hung, a publish from the one thread the sync views and the database share
    would stall every request of the process: the async middleware publishes from a worker."""
    database_thread = await database_sync_to_async(threading.get_ident)()
    publishing_threads = []
    real = realtime.broadcast_sessions_revoked

    def spy(**kwargs):
        publishing_threads.append(threading.get_ident())
        real(**kwargs)

    monkeypatch.setattr(realtime, "broadcast_sessions_revoked", spy)
    browser = await logged_in(alice)
    communicator = await socket_for(browser, public_room.pk)
    asgi_client = AsyncClient()
    asgi_client.cookies = browser.cookies
    assert (await asgi_client.post("/accounts/logout/")).status_code == 302
    await assert_closed_and_deaf(communicator)
    assert publishing_threads and database_thread not in publishing_threads


def test_a_failing_profile_publish_does_not_fail_the_save(alice_client, monkeypatch, caplog):
    """The profile's on_commit publish is robust: an error is logged, never a 500."""

    def broken(**kwargs):
        raise RuntimeError("publish exploded")

    monkeypatch.setattr(realtime, "broadcast_profile_changed", broken)
    response = alice_client.post(
        "/profiles/me/edit/", {"display_name": "Queen A"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "publish exploded" in caplog.text


def test_under_asgi_no_middleware_is_adapted(caplog, settings):
    """Every middleware, the revocation one included, runs in the handler's async mode: no
    sync/async switch per request, and Session/CSRF/Auth stay off the database thread."""
    import logging

    from django.core.handlers.asgi import ASGIHandler

    settings.DEBUG = True  # Django logs each adaptation only then
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        ASGIHandler()
    assert not [r for r in caplog.records if "adapted for" in r.getMessage()]
