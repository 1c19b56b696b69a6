"""Presence (apps/chat/presence.py): the store and its aggregation with a clock the tests
control (tabs across processes, idle → away, TTL expiry, coalescing), privacy, and the frames
through the real ASGI stack (a watcher sees another user come online and go offline)."""

import json

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.urls import reverse

from apps.chat import fanout, presence
from apps.chat.presence import AWAY, OFFLINE, ONLINE
from apps.profiles import services as profile_services

from .helpers import open_socket, send_json

T0 = 1_000_000.0


@pytest.fixture(autouse=True)
def _no_presence_entries(db, alice, bob, carol):
    cache.delete_many([presence.key(u.pk) for u in (alice, bob, carol)])
    yield
    cache.delete_many([presence.key(u.pk) for u in (alice, bob, carol)])


class Process:
    """One server process's tracker, writing with an explicit clock; records broadcasts."""

    def __init__(self, name, published):
        self.tracker = presence.Tracker(process=name)
        self.published = published

    def flush(self, now, renew=False):
        users = list(self.tracker.users) if renew else self.tracker.changed(now)
        updates = self.tracker.updates(users, now)
        written, deferred = presence.write(
            self.tracker.process,
            updates,
            now,
            publish=lambda user, level: self.published.append((now, user, level)),
        )
        self.tracker.wrote(written, deferred)


@pytest.fixture
def published():
    return []


@pytest.fixture
def procs(published):
    return Process("a", published), Process("b", published)


def shown(user, now):
    return presence.read([user.pk], now)[user.pk]


# --- the store, with a controlled clock -------------------------------------------------------


def test_tabs_in_two_processes_are_one_person_until_the_last_goes(procs, published, alice):
    a, b = procs
    for proc, sock in ((a, "t1"), (b, "t2")):
        proc.tracker.opened(alice.pk, sock, T0)
        proc.tracker.users[alice.pk].hide = False
        proc.flush(T0)
    assert shown(alice, T0) == ONLINE
    assert published == [(T0, alice.pk, ONLINE)]  # the second tab changed nothing
    a.tracker.closed(alice.pk, "t1", T0 + 10)
    a.flush(T0 + 10 + presence.CLOSE_GRACE_SECONDS + 1)
    assert shown(alice, T0 + 20) == ONLINE  # b still has a tab
    b.tracker.closed(alice.pk, "t2", T0 + 20)
    b.flush(T0 + 20)  # within the grace: still as it was
    assert shown(alice, T0 + 21) == ONLINE
    b.flush(T0 + 20 + presence.CLOSE_GRACE_SECONDS + 0.1)
    assert shown(alice, T0 + 30) == OFFLINE
    assert published[-1][1:] == (alice.pk, OFFLINE)
    assert len(published) == 2


def test_an_unused_tab_makes_its_user_away_after_five_minutes_and_activity_brings_them_back(
    procs, published, alice
):
    a, _ = procs
    a.tracker.opened(alice.pk, "t1", T0)
    a.tracker.users[alice.pk].hide = False
    a.flush(T0)
    idle_at = T0 + presence.IDLE_SECONDS
    assert a.tracker.next_due(T0) == idle_at
    a.flush(idle_at - 1, renew=True)
    assert shown(alice, idle_at - 1) == ONLINE
    a.flush(idle_at, renew=True)
    assert shown(alice, idle_at) == AWAY
    assert a.tracker.activity(alice.pk, "t1", idle_at + 30) is True
    a.flush(idle_at + 30)
    assert shown(alice, idle_at + 30) == ONLINE
    assert [level for _, _, level in published] == [ONLINE, AWAY, ONLINE]


def test_a_crashed_processs_users_go_offline_when_its_parts_expire(procs, alice):
    a, b = procs
    a.tracker.opened(alice.pk, "t1", T0)
    a.tracker.users[alice.pk].hide = False
    a.flush(T0)
    # Process a dies: nothing renews its part. Nobody else writes alice.
    assert shown(alice, T0 + presence.TTL_SECONDS - 1) == ONLINE
    assert shown(alice, T0 + presence.TTL_SECONDS + 0.1) == OFFLINE
    # And another process writing alice later does not revive the dead part.
    b.tracker.opened(alice.pk, "t2", T0 + 40)
    b.tracker.users[alice.pk].hide = False
    b.tracker.closed(alice.pk, "t2", T0 + 40)
    b.flush(T0 + 40 + presence.CLOSE_GRACE_SECONDS + 1)
    assert shown(alice, T0 + 50) == OFFLINE


def test_five_tabs_flapping_make_at_most_one_change_per_window(procs, published, alice):
    a, b = procs
    now = T0
    for proc in procs:
        proc.tracker.opened(alice.pk, "seed", now)
        proc.tracker.users[alice.pk].hide = False
        proc.tracker.closed(alice.pk, "seed", now)
    # Five tabs, spread over two processes, each closing and reopening every 0.5-3 s for a
    # minute; each process writes whenever its level changed.
    tabs = [(a if i % 2 else b, f"tab{i}") for i in range(5)]
    step, open_tabs = 0, set()
    while now < T0 + 60:
        proc, sock = tabs[step % 5]
        if sock in open_tabs:
            open_tabs.discard(sock)
            proc.tracker.closed(alice.pk, sock, now)
        else:
            open_tabs.add(sock)
            proc.tracker.opened(alice.pk, sock, now)
        for p in procs:
            p.flush(now)
        now += 0.5 + (step % 6) * 0.5
        step += 1
    times = [t for t, _, _ in published]
    assert times, "the first open is a change"
    assert all(t2 - t1 >= presence.MIN_INTERVAL_SECONDS for t1, t2 in zip(times, times[1:]))
    assert len(published) <= 60 / presence.MIN_INTERVAL_SECONDS


def test_a_tab_reopened_within_the_grace_changes_nothing(procs, published, alice):
    a, _ = procs
    a.tracker.opened(alice.pk, "t1", T0)
    a.tracker.users[alice.pk].hide = False
    a.flush(T0)
    for i in range(30):  # a reload every second for 30 s
        a.tracker.closed(alice.pk, f"t{i + 1}", T0 + i)
        a.tracker.closed(alice.pk, "t1", T0 + i)
        a.flush(T0 + i + 0.5)
        a.tracker.opened(alice.pk, f"t{i + 2}", T0 + i + 1)
        a.flush(T0 + i + 1)
    assert published == [(T0, alice.pk, ONLINE)]


def test_a_change_inside_the_window_is_deferred_to_its_end_not_dropped(procs, published, alice):
    a, _ = procs
    a.tracker.opened(alice.pk, "t1", T0)
    a.tracker.users[alice.pk].hide = False
    a.flush(T0)
    a.tracker.closed(alice.pk, "t1", T0 + 0.1)
    after_grace = T0 + 0.1 + presence.CLOSE_GRACE_SECONDS
    if after_grace < T0 + presence.MIN_INTERVAL_SECONDS:
        a.flush(after_grace)
        assert published == [(T0, alice.pk, ONLINE)]
        assert a.tracker.deferred[alice.pk] == T0 + presence.MIN_INTERVAL_SECONDS
    a.flush(T0 + presence.MIN_INTERVAL_SECONDS + presence.CLOSE_GRACE_SECONDS)
    assert published[-1][1:] == (alice.pk, OFFLINE)


def test_hidden_users_are_offline_to_everyone(procs, published, alice):
    a, _ = procs
    a.tracker.opened(alice.pk, "t1", T0)
    a.tracker.users[alice.pk].hide = True
    a.flush(T0)
    assert shown(alice, T0) == OFFLINE
    assert published == []
    # Their true state is still kept (turning it back on shows it at once).
    assert presence.true_level(cache.get(presence.key(alice.pk)), T0) == ONLINE


def test_privacy_changed_broadcasts_at_once_and_the_entry_follows(procs, alice, monkeypatch):
    a, _ = procs
    sent = []
    monkeypatch.setattr(presence, "publish_change", lambda *args, **kw: sent.append((args, kw)))
    monkeypatch.setattr(presence, "clock", lambda: T0 + 1)
    a.tracker.opened(alice.pk, "t1", T0)
    a.tracker.users[alice.pk].hide = False
    a.flush(T0)
    presence.privacy_changed(alice.pk, show=False)
    assert shown(alice, T0 + 1) == OFFLINE
    assert sent == [((alice.pk, OFFLINE), {"hide": True})]
    presence.privacy_changed(alice.pk, show=False)  # a save of another field: nothing
    assert len(sent) == 1
    presence.privacy_changed(alice.pk, show=True)
    assert sent[-1] == ((alice.pk, ONLINE), {"hide": False})


# --- through the real ASGI stack ---------------------------------------------------------------


@pytest.fixture
def quick(monkeypatch):
    """Short windows, so the consumer tests need no long waits."""
    monkeypatch.setattr(presence, "CLOSE_GRACE_SECONDS", 0.2)
    monkeypatch.setattr(presence, "MIN_INTERVAL_SECONDS", 0.3)
    monkeypatch.setattr(fanout, "PRESENCE_BATCH_SECONDS", 0.02)


async def presence_frame(socket, timeout=5.0) -> dict:
    """The next presence frame on the socket (other output skipped)."""
    while True:
        text = await socket.receive_from(timeout=timeout)
        if text.startswith('{"type":"presence"'):
            return json.loads(text)


async def watch(socket, *users) -> dict:
    await send_json(socket, {"type": "presence-watch", "users": [u.pk for u in users]})
    return (await presence_frame(socket))["states"]


pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_watcher_sees_a_user_come_online_and_go_offline(quick, alice, bob):
    watcher, ok = await open_socket(None, alice)
    assert ok
    assert await watch(watcher, bob) == {str(bob.pk): OFFLINE}
    bobs, ok = await open_socket(None, bob)
    assert ok
    frame = await presence_frame(watcher, timeout=2)
    assert frame == {"type": "presence", "user": bob.pk, "presence": ONLINE}
    await bobs.disconnect()
    frame = await presence_frame(watcher, timeout=5)
    assert frame == {"type": "presence", "user": bob.pk, "presence": OFFLINE}
    await watcher.disconnect()


async def test_a_second_tab_and_a_reload_within_the_grace_send_nothing(
    quick, monkeypatch, alice, bob
):
    monkeypatch.setattr(presence, "CLOSE_GRACE_SECONDS", 1.0)
    watcher, _ = await open_socket(None, alice)
    await watch(watcher, bob)
    tab1, _ = await open_socket(None, bob)
    assert (await presence_frame(watcher, timeout=2))["presence"] == ONLINE
    tab2, _ = await open_socket(None, bob)
    await tab1.disconnect()
    tab3, _ = await open_socket(None, bob)  # a reload
    await tab2.disconnect()
    assert await watcher.receive_nothing(timeout=1.5)
    await tab3.disconnect()
    assert (await presence_frame(watcher, timeout=5))["presence"] == OFFLINE
    await watcher.disconnect()


async def test_only_sockets_that_watch_a_user_get_their_changes(quick, alice, bob, carol):
    watching, _ = await open_socket(None, alice)
    await watch(watching, bob)
    other, _ = await open_socket(None, carol)
    assert await watch(other) == {}  # carol's page shows no dot
    bobs, _ = await open_socket(None, bob)
    assert (await presence_frame(watching, timeout=2))["presence"] == ONLINE
    assert await other.receive_nothing(timeout=0.5)
    for socket in (watching, other, bobs):
        await socket.disconnect()


async def test_sockets_that_start_watching_together_get_their_answers_and_nothing_more(
    quick, alice, bob, carol
):
    """Many pages opening at once (a restart): each learns a dot from its own answer; one
    answer is not also sent to every other watcher (S11 counted thousands of those)."""
    bobs, _ = await open_socket(None, bob)
    first, _ = await open_socket(None, alice)
    second, _ = await open_socket(None, carol)
    await first.receive_nothing(timeout=0.3)
    for socket in (first, second):
        await send_json(socket, {"type": "presence-watch", "users": [bob.pk]})
    for socket in (first, second):
        assert (await presence_frame(socket))["states"] == {str(bob.pk): ONLINE}
    for socket in (first, second):
        assert await socket.receive_nothing(timeout=0.5)
    for socket in (first, second, bobs):
        await socket.disconnect()


async def test_the_room_socket_carries_presence_too(quick, public_room, alice, bob):
    watcher, ok = await open_socket(public_room.pk, alice)
    assert ok
    assert await watch(watcher, bob) == {str(bob.pk): OFFLINE}
    bobs, _ = await open_socket(None, bob)
    assert (await presence_frame(watcher, timeout=2))["presence"] == ONLINE
    await send_json(bobs, {"type": "activity"})
    assert await bobs.receive_nothing(timeout=0.3)  # taken without an answer
    await bobs.disconnect()
    await watcher.disconnect()


async def test_a_user_who_hides_their_status_appears_offline_then_online_when_shown(
    quick, alice, bob
):
    await database_sync_to_async(profile_services.profile_update)(
        profile=bob.profile, show_presence=False
    )
    bobs, _ = await open_socket(None, bob)
    watcher, _ = await open_socket(None, alice)
    await watcher.receive_nothing(timeout=0.3)
    assert await watch(watcher, bob) == {str(bob.pk): OFFLINE}
    assert await watcher.receive_nothing(timeout=0.5)
    await database_sync_to_async(profile_services.profile_update)(
        profile=bob.profile, show_presence=True
    )
    assert (await presence_frame(watcher, timeout=3))["presence"] == ONLINE
    await database_sync_to_async(profile_services.profile_update)(
        profile=bob.profile, show_presence=False
    )
    assert (await presence_frame(watcher, timeout=3))["presence"] == OFFLINE
    await bobs.disconnect()
    await watcher.disconnect()


async def test_a_bad_presence_watch_is_refused_with_an_error(alice):
    socket, _ = await open_socket(None, alice)
    await send_json(socket, {"type": "presence-watch", "users": "everyone"})
    assert "list of user ids" in await socket.receive_from(timeout=5)
    await socket.disconnect()


# --- pages and the API --------------------------------------------------------------------------


def _online(user, now=None):
    tracker = presence.Tracker(process="t")
    tracker.opened(user.pk, "s", presence.clock())
    tracker.users[user.pk].hide = not user.profile.show_presence
    presence.write(
        "t", tracker.updates([user.pk], presence.clock()), presence.clock(), publish=lambda *a: None
    )


def test_the_api_gives_each_profile_its_presence(alice_client, alice, bob, carol):
    _online(bob)
    carol.profile.show_presence = False
    carol.profile.save()
    _online(carol)
    rows = {r["id"]: r["presence"] for r in alice_client.get("/api/profiles/").json()["results"]}
    assert rows[bob.pk] == ONLINE
    assert rows[carol.pk] == OFFLINE
    assert rows[alice.pk] == OFFLINE  # no socket open
    one = alice_client.get(f"/api/profiles/{bob.pk}/").json()
    assert one["presence"] == ONLINE


def test_the_users_page_renders_each_dot_with_its_state(alice_client, bob, carol):
    _online(bob)
    html = alice_client.get(reverse("profiles:list")).content.decode()
    assert f'data-testid="presence-{bob.pk}" data-presence="online"' in html
    assert f'data-testid="presence-{carol.pk}" data-presence="offline"' in html


def test_the_room_member_list_renders_each_members_dot(alice_client, alice, bob, carol):
    from apps.chat import services

    group = services.room_create(name="team", creator=alice, private=True, members=["bob", "carol"])
    _online(bob)
    html = alice_client.get(reverse("chat:room_settings", args=[group.pk])).content.decode()
    assert f'data-testid="presence-{bob.pk}" data-presence="online"' in html
    assert f'data-testid="presence-{carol.pk}" data-presence="offline"' in html


async def test_the_presence_timer_does_not_ask_its_handle_for_its_time(monkeypatch):
    """Under uvloop, call_at with a time already past returns a plain Handle, which has no
    when(): the hub keeps the due time itself (it raised AttributeError in production)."""
    import asyncio

    from apps.chat import fanout

    loop = asyncio.get_running_loop()
    real_call_at = loop.call_at

    class Bare:  # a handle that can only be cancelled
        def __init__(self, handle):
            self._handle = handle

        def cancel(self):
            self._handle.cancel()

    monkeypatch.setattr(
        loop, "call_at", lambda when, cb, *args: Bare(real_call_at(when, cb, *args))
    )
    hub = fanout.Hub(None)
    hub._presence_soon(5.0)
    hub._presence_soon(1.0)  # sooner: replaces it
    hub._presence_soon(3.0)  # later: the sooner one stays
    assert abs(hub._presence_due_at - (loop.time() + 1.0)) < 0.5
    hub._presence_timer.cancel()
