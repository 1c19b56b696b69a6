"""Issue #8 item 1: an open websocket ends with its session.

Logout, a deleted session, a password change in another session, deactivation and deletion of
the user close the matching open sockets with 4401 within 2 s, and a frame sent after that is
not acted on. The change of password keeps the session that made it (and its socket). The
hub's periodic re-check closes what an event missed (an expired session, a lost event), and a
rename shows in the next message an open socket sends.

Each case goes through the full ASGI stack and a real HTTP request or service call; on the
real Redis channel layer when REDIS_URL is set."""

import asyncio
import datetime

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import AsyncClient, Client
from django.utils import timezone

from apps.accounts.sessions import identities_still_valid
from apps.chat import fanout, realtime
from apps.profiles.services import profile_update
from project.asgi import application

from .helpers import (
    CLOSED_4401,
    HOST,
    ORIGIN,
    assert_alive,
    assert_closed_and_deaf,
    cookie_of,
    logged_in,
    socket_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

# --- the triggers ---------------------------------------------------------------------------


async def test_logout_closes_that_sessions_sockets_only(public_room, alice):
    phone, laptop = await logged_in(alice), await logged_in(alice)
    phone_socket, laptop_socket = (
        await socket_for(phone, public_room.pk),
        await socket_for(laptop, public_room.pk),
    )
    response = await database_sync_to_async(phone.post)("/accounts/logout/")
    assert response.status_code == 302
    await assert_closed_and_deaf(phone_socket)
    await assert_alive(laptop_socket)
    await laptop_socket.disconnect()


async def test_under_the_asgi_handler_the_changing_session_is_kept_too(
    public_room, alice, password
):
    """Production runs the middleware chain under ASGI (sync middleware in threads): the
    revocations collected during the request must still reach the middleware, or the
    changing session's socket would be closed with the others."""
    changer, elsewhere = await logged_in(alice), await logged_in(alice)
    changer_socket = await socket_for(changer, public_room.pk)
    elsewhere_socket = await socket_for(elsewhere, public_room.pk)
    asgi_client = AsyncClient()
    asgi_client.cookies = changer.cookies
    new = "a-new-long-passphrase"
    response = await asgi_client.post(
        "/accounts/password/change/", {"oldpassword": password, "password1": new, "password2": new}
    )
    assert response.status_code == 302
    await assert_closed_and_deaf(elsewhere_socket)
    await assert_alive(changer_socket)
    await changer_socket.disconnect()


async def test_deleting_the_session_row_closes_its_sockets(public_room, alice):
    """Admin, clearsessions or a DELETE by hand: the socket of that session goes."""
    browser, other = await logged_in(alice), await logged_in(alice)
    doomed, kept = (
        await socket_for(browser, public_room.pk),
        await socket_for(other, public_room.pk),
    )
    await database_sync_to_async(Session.objects.filter(session_key=cookie_of(browser)).delete)()
    await assert_closed_and_deaf(doomed)
    await assert_alive(kept)
    await kept.disconnect()


async def test_a_password_change_closes_the_other_sessions_but_keeps_the_changing_one(
    public_room, alice, password
):
    changer, elsewhere = await logged_in(alice), await logged_in(alice)
    changer_socket = await socket_for(changer, public_room.pk)
    elsewhere_socket = await socket_for(elsewhere, public_room.pk)
    old_key = cookie_of(changer)
    response = await database_sync_to_async(changer.post)(
        "/accounts/password/change/",
        {
            "oldpassword": password,
            "password1": "a-new-long-passphrase",
            "password2": "a-new-long-passphrase",
        },
    )
    assert response.status_code == 302, response.content
    assert cookie_of(changer) != old_key  # update_session_auth_hash cycled the key
    await assert_closed_and_deaf(elsewhere_socket)
    await assert_alive(changer_socket)
    # The kept socket learnt its session's new key: the re-check keeps it too.
    await fanout.hub().verify()
    await assert_alive(changer_socket, "after the re-check")
    # And the changing browser is still logged in over HTTP.
    assert (await database_sync_to_async(changer.get)("/")).status_code == 200
    await changer_socket.disconnect()


async def test_a_password_set_outside_a_request_closes_every_session(public_room, alice):
    """manage.py changepassword, a shell: no session made the change, none is kept."""
    a, b = await logged_in(alice), await logged_in(alice)
    sockets = [await socket_for(a, public_room.pk), await socket_for(b, public_room.pk)]

    def change() -> None:
        user = get_user_model().objects.get(pk=alice.pk)
        user.set_password("another-long-passphrase")
        user.save()

    await database_sync_to_async(change)()
    for communicator in sockets:
        await assert_closed_and_deaf(communicator)


async def test_deactivation_closes_every_socket_of_the_user(public_room, alice, bob):
    alice_client, bob_client = await logged_in(alice), await logged_in(bob)
    alice_socket = await socket_for(alice_client, public_room.pk)
    bob_socket = await socket_for(bob_client, public_room.pk)

    def deactivate() -> None:
        user = get_user_model().objects.get(pk=alice.pk)
        user.is_active = False
        user.save()

    await database_sync_to_async(deactivate)()
    await assert_closed_and_deaf(alice_socket)
    await assert_alive(bob_socket)
    await bob_socket.disconnect()


async def test_deleting_the_user_closes_their_sockets(public_room, make_user):
    dave = await database_sync_to_async(make_user)("dave")
    communicator = await socket_for(await logged_in(dave), public_room.pk)
    await database_sync_to_async(get_user_model().objects.filter(pk=dave.pk).delete)()
    await assert_closed_and_deaf(communicator)


async def test_a_revocation_while_the_layer_is_unreachable_is_logged_not_raised(
    public_room, alice, monkeypatch, caplog
):
    """The logout itself must not fail with Redis down; the re-check closes the socket."""
    from channels.layers import get_channel_layer
    from redis.exceptions import ConnectionError as RedisConnectionError

    browser = await logged_in(alice)
    communicator = await socket_for(browser, public_room.pk)
    layer = get_channel_layer()
    real_group_send = layer.group_send

    async def unreachable(group, message):
        if group == realtime.USERS_GROUP:
            raise RedisConnectionError("Connection refused")
        return await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", unreachable)
    response = await database_sync_to_async(browser.post)("/accounts/logout/")
    assert response.status_code == 302
    assert "not published" in caplog.text
    await assert_alive(communicator)  # the event was lost…
    await fanout.hub().verify()  # …the re-check closes it
    assert await communicator.receive_output(timeout=2) == CLOSED_4401
    await communicator.disconnect()


# --- the periodic re-check --------------------------------------------------------------------


async def test_a_session_that_expires_while_open_is_closed_by_the_re_check(public_room, alice):
    communicator = await socket_for(await logged_in(alice), public_room.pk)
    await fanout.hub().verify()
    await assert_alive(communicator)  # a valid session stays
    await database_sync_to_async(Session.objects.filter(expire_date__gt=timezone.now()).update)(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )
    await fanout.hub().verify()
    await assert_closed_and_deaf(communicator)


async def test_the_re_check_uses_the_clock_not_only_the_rows(public_room, alice, monkeypatch):
    """Nothing in the database changes; time passes the session's expiry date."""
    communicator = await socket_for(await logged_in(alice), public_room.pk)
    expiry = await database_sync_to_async(lambda: Session.objects.get().expire_date)()
    later = expiry + datetime.timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    await fanout.hub().verify()
    assert await communicator.receive_output(timeout=2) == CLOSED_4401
    await communicator.disconnect()


async def test_the_hub_tick_runs_the_re_check(public_room, alice, monkeypatch):
    """Wiring: the tick calls verify every VERIFY_SECONDS (shortened here), so an expired
    session is closed without anyone calling it."""
    monkeypatch.setattr(fanout, "TICK_SECONDS", 0.05)
    monkeypatch.setattr(fanout, "VERIFY_SECONDS", 0.0)
    communicator = await socket_for(await logged_in(alice), public_room.pk)
    await database_sync_to_async(Session.objects.update)(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert await communicator.receive_output(timeout=5) == CLOSED_4401
    await communicator.disconnect()


@pytest.mark.parametrize("change", ["password", "inactive", "session-gone"])
async def test_the_re_check_catches_what_a_lost_event_missed(
    public_room, alice, monkeypatch, change
):
    """Changes made without signals (queryset.update) or whose event was lost."""
    monkeypatch.setattr(realtime, "broadcast_sessions_revoked", lambda **kwargs: None)
    browser = await logged_in(alice)
    communicator = await socket_for(browser, public_room.pk)
    users = get_user_model().objects.filter(pk=alice.pk)

    def apply() -> None:
        if change == "password":
            users.update(password="md5$x$" + "0" * 32)
        elif change == "inactive":
            users.update(is_active=False)
        else:
            Session.objects.filter(session_key=cookie_of(browser)).delete()

    await database_sync_to_async(apply)()
    await assert_alive(communicator)  # not closed yet: no event came
    await fanout.hub().verify()
    await assert_closed_and_deaf(communicator)


def test_the_re_check_costs_two_queries_for_any_number_of_sockets(
    alice, bob, carol, django_assert_num_queries
):
    identities = []
    for user in (alice, alice, bob, bob, carol):
        client = Client()
        client.force_login(user)
        identities.append((cookie_of(client), user.pk))
    identities.append(("no-such-session", alice.pk))
    with django_assert_num_queries(2):
        valid, users = identities_still_valid(identities)
    assert valid == set(identities[:5])
    assert users[bob.pk].profile.name == "Bob"  # fetched with its user, no third query


async def test_clearsessions_does_not_touch_live_sockets(public_room, alice):
    communicator = await socket_for(await logged_in(alice), public_room.pk)
    await database_sync_to_async(call_command)("clearsessions")
    await assert_alive(communicator)
    await communicator.disconnect()


# --- rename -----------------------------------------------------------------------------------


async def wait_for_profile_event(monkeypatch) -> asyncio.Event:
    """Set once this process's hub has handled a user.changed event (a condition to wait
    for, instead of a sleep)."""
    handled = asyncio.Event()
    real = fanout.Hub.profile_changed

    def spy(self, event):
        real(self, event)
        handled.set()

    monkeypatch.setattr(fanout.Hub, "profile_changed", spy)
    return handled


async def test_a_rename_shows_in_the_next_message_on_an_open_socket(
    public_room, alice, monkeypatch
):
    communicator = await socket_for(await logged_in(alice), public_room.pk)
    assert "Alice" in await assert_alive(communicator, "my old name")  # cached at first use
    handled = await wait_for_profile_event(monkeypatch)

    def rename() -> None:
        profile = get_user_model().objects.get(pk=alice.pk).profile
        profile_update(profile=profile, display_name="Alicia Keys")

    await database_sync_to_async(rename)()
    await asyncio.wait_for(handled.wait(), 2)
    html = await assert_alive(communicator, "my new name")
    assert "Alicia Keys" in html
    await communicator.disconnect()


async def test_a_rename_through_the_edit_page_reaches_other_open_sockets_too(
    public_room, alice, bob, monkeypatch
):
    alice_client = await logged_in(alice)
    socket_a = await socket_for(alice_client, public_room.pk)
    socket_b = await socket_for(await logged_in(alice), public_room.pk)
    assert "Alice" in await assert_alive(socket_b, "my old name")
    handled = await wait_for_profile_event(monkeypatch)
    response = await database_sync_to_async(alice_client.post)(
        "/profiles/me/edit/", {"display_name": "Queen A"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    await asyncio.wait_for(handled.wait(), 2)
    assert "Queen A" in await assert_alive(socket_b, "from the second tab")
    await socket_a.disconnect()
    await socket_b.disconnect()


async def test_a_rename_whose_event_was_lost_shows_after_the_re_check(
    public_room, alice, monkeypatch
):
    monkeypatch.setattr(realtime, "broadcast_profile_changed", lambda **kwargs: None)
    communicator = await socket_for(await logged_in(alice), public_room.pk)
    assert "Alice" in await assert_alive(communicator, "my old name")

    def rename() -> None:
        profile = get_user_model().objects.get(pk=alice.pk).profile
        profile_update(profile=profile, display_name="Alicia Keys")

    await database_sync_to_async(rename)()
    assert "Alicia Keys" not in await assert_alive(communicator, "stale")
    await fanout.hub().verify()
    assert "Alicia Keys" in await assert_alive(communicator, "fresh")
    await communicator.disconnect()


async def test_a_revocation_during_the_handshake_closes_after_accepting(
    public_room, alice, monkeypatch
):
    """Revoked while the hub subscribes (before accept): closing then would be refused as a
    handshake (htmx retries that forever) or make the later accept fail; it closes with 4401
    right after accepting instead."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    real_group_add = layer.group_add

    async def add_then_revoke(group, channel):
        await real_group_add(group, channel)
        if group.startswith("room-"):
            fanout.hub().revoke({"type": "user.revoke", "user": alice.pk, "sessions": None})
            await asyncio.sleep(0)  # one loop turn: a close scheduled by revoke would go first

    monkeypatch.setattr(layer, "group_add", add_then_revoke)
    browser = await logged_in(alice)
    cookie = (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie_of(browser)}".encode())
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/room/{public_room.pk}/", headers=[HOST, ORIGIN, cookie]
    )
    assert await communicator.connect(timeout=5) == (True, None)
    await assert_closed_and_deaf(communicator)


@pytest.mark.redis
async def test_each_process_is_one_member_of_the_users_group_however_many_sockets(
    public_room, private_room, alice, bob
):
    """Identity events cost one Redis message per process, and a connect costs no extra
    group_add: the hub joins the group once when it starts, and leaves it when idle."""
    import redis
    from channels.layers import get_channel_layer

    client = redis.Redis.from_url(settings.REDIS_URL)
    key = get_channel_layer()._group_key(realtime.USERS_GROUP)
    sockets = [
        await socket_for(await logged_in(user), room.pk)
        for user, room in ((alice, public_room), (alice, private_room), (bob, private_room))
    ]
    assert await asyncio.to_thread(client.zcard, key) == 1
    for communicator in sockets:
        await communicator.disconnect()
    assert await asyncio.to_thread(client.zcard, key) == 0


async def test_a_malformed_identity_event_does_not_stop_the_hub(public_room, alice, bob, caplog):
    alice_socket = await socket_for(await logged_in(alice), public_room.pk)
    bob_socket = await socket_for(await logged_in(bob), public_room.pk)
    await database_sync_to_async(realtime._publish_user_event)(
        {"type": "user.revoke", "user": alice.pk, "sessions": None, "keep": 5}
    )
    # The hub still reads: bob's message reaches alice.
    await assert_alive(bob_socket, "after the odd event")
    assert "after the odd event" in await alice_socket.receive_from(timeout=5)
    assert "identity event" in caplog.text
    await bob_socket.disconnect()
    await alice_socket.disconnect()


async def test_a_failing_revocation_does_not_fail_the_logout(
    public_room, alice, monkeypatch, caplog
):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(realtime, "broadcast_sessions_revoked", broken)
    browser = await logged_in(alice)
    communicator = await socket_for(browser, public_room.pk)
    response = await database_sync_to_async(browser.post)("/accounts/logout/")
    assert response.status_code == 302
    assert "revocation receiver" in caplog.text
    await fanout.hub().verify()  # the backstop
    await assert_closed_and_deaf(communicator)
