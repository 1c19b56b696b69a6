"""The invariant unread badges break in other chat servers (Zulip #8236, Rocket.Chat #27776,
element-web #3363): after any sequence of sends, reads, edits, deletes, joins, leaves, removals,
mutes and reconnects, what each open tab shows equals what a freshly loaded page shows.

A seeded random walk of a few hundred actions (after Zulip's ``verify_action``): Alice has two
tabs open — sockets that come and go, on a room or on the user stream — while Bob and Carol
write, edit and delete, mention her, and Bob (the group's owner) removes and re-adds her. After
every action each open tab's badges (its last ``sync`` plus the ``unread`` frames since) and its
title count must equal the database's answer within 2 s — ``selectors.unread_states`` is what
the page renders — and after the walk the tabs must still agree with a page loaded then."""

import asyncio
import json
import os
import random

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.chat import fanout, selectors, services
from apps.chat.models import Membership, Message
from project.asgi import application

from .helpers import HOST, ORIGIN, cookie_of, logged_in, send_json

pytestmark = pytest.mark.django_db(transaction=True)

ACTIONS = 300
# More walks: PARLEY_DRIFT_SEEDS=1,2,3 (each is ~300 actions, 15-45 s).
SEEDS = [int(seed) for seed in os.environ.get("PARLEY_DRIFT_SEEDS", "10").split(",")]
SETTLE_SECONDS = 2.0


class Tab:
    """One open tab of Alice's: a socket and the badges it would show."""

    def __init__(self, name: str, communicator: WebsocketCommunicator, room_id: int | None):
        self.name = name
        self.socket = communicator
        self.room_id = room_id  # the room it views (None: a page without a room)
        self.badges: dict[int, tuple[int, int, bool]] = {}  # room -> (unread, mentions, muted)
        self.closed: int | None = None

    def apply(self, output: dict) -> None:
        if output["type"] == "websocket.close":
            self.closed = output.get("code")
            return
        text = output.get("text") or ""
        if not text.startswith("{"):
            return  # the room's own stream: HTML fragments
        frame = json.loads(text)
        if frame["type"] == "sync":
            self.badges = {
                int(room): (state["unread"], state["mentions"], state["muted"])
                for room, state in frame["rooms"].items()
            }
        elif frame["type"] == "unread":
            self.badges[int(frame["room"])] = (frame["unread"], frame["mentions"], frame["muted"])

    def title_count(self) -> int:
        return sum(unread for unread, _mentions, muted in self.badges.values() if not muted)


@database_sync_to_async
def fresh_page(user) -> dict[int, tuple[int, int, bool]]:
    """What a page loaded now shows: the read of the database the sidebar renders."""
    states = selectors.unread_states(user_id=user.pk)
    return {room: (s.unread, s.mentions, s.muted) for room, s in states.items()}


async def open_tab(name: str, client, room_id: int | None) -> Tab:
    cookie = (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie_of(client)}".encode())
    path = f"/ws/chat/room/{room_id}/" if room_id else "/ws/user/"
    communicator = WebsocketCommunicator(application, path, headers=[HOST, ORIGIN, cookie])
    connected, _ = await communicator.connect(timeout=5)
    assert connected, path
    tab = Tab(name, communicator, room_id)
    if room_id:
        last = await database_sync_to_async(selectors.room_last_seq)(
            room=await database_sync_to_async(lambda: _room(room_id))()
        )
        await send_json(communicator, {"type": "resume", "after_seq": last})
    return tab


def _room(pk):
    from apps.chat.models import Room

    return Room.objects.get(pk=pk)


async def settle(tabs: list[Tab], user, step: str) -> None:
    """Every open tab shows the fresh page's badges within SETTLE_SECONDS. The pointers read
    live are written by the hub's batch (due within a second): run now, each time round, as
    a change an open tab read live may still be on its way to it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        await fanout.hub().flush_reads()
        expected = await fresh_page(user)
        behind = [t for t in tabs if t.closed is None and t.badges != expected]
        if not behind:
            break
        if loop.time() > deadline:
            tab = behind[0]
            pytest.fail(f"after {step}: tab {tab.name} shows {tab.badges}, a fresh page {expected}")
        for tab in behind:
            # (receive_nothing, not a short receive_output: a timeout there cancels the app)
            if not await tab.socket.receive_nothing(timeout=0.05):
                tab.apply(await tab.socket.receive_output(timeout=1))
    total = sum(u for u, _m, muted in expected.values() if not muted)
    for tab in tabs:
        if tab.closed is None:
            assert tab.title_count() == total, f"after {step}: title of {tab.name}"


async def drain(tab: Tab) -> None:
    """Apply whatever the tab has been sent so far (nothing more arrives meanwhile)."""
    while not await tab.socket.receive_nothing(timeout=0.05):
        tab.apply(await tab.socket.receive_output(timeout=1))


@pytest.mark.parametrize("seed", SEEDS)
async def test_badges_in_every_tab_equal_a_fresh_page_after_a_random_walk(
    seed, make_user, unlimited, settings, monkeypatch
):
    settings.PARLEY_ROOM_ADMIN_RATE = (1_000_000, 10)
    settings.PARLEY_READ_RATE = (1_000_000, 10)
    monkeypatch.setattr(fanout, "READ_FLUSH_SECONDS", 3600)  # written when settle() says
    alice, bob, carol = [
        await database_sync_to_async(make_user)(name) for name in ("alice", "bob", "carol")
    ]
    rng = random.Random(seed)

    @database_sync_to_async
    def world():
        lobby = services.room_create(name="lobby", creator=bob)
        other = services.room_create(name="other", creator=carol)
        group = services.room_create(
            name="group", creator=bob, private=True, members=["alice", "carol"]
        )
        dm, _ = services.dm_get_or_create(user=bob, other=alice)
        services.room_join(room=lobby, user=alice)
        services.room_join(room=lobby, user=carol)
        services.room_join(room=other, user=bob)
        return lobby, other, group, dm

    lobby, other, group, dm = await world()
    rooms = [lobby, other, group, dm]
    client = await logged_in(alice)

    @database_sync_to_async
    def act(kind: str) -> str:
        room = rng.choice(rooms)
        writer = rng.choice([bob, carol]) if room != dm else bob
        if kind == "send":
            mention = rng.choice(["", " @alice", " @room", " @carol"])
            try:
                services.message_send(room=room, author=writer, body=f"hello{mention}")
            except services.RoomNotFound:  # carol is not in the DM; nobody in a gone room
                return "send refused"
            return f"send by {writer} in {room.pk}{mention}"
        if kind == "own":
            try:
                services.message_send(room=room, author=alice, body="mine")
            except services.RoomNotFound:
                return "own send refused"
            return f"alice's own message in {room.pk}"
        mine = list(Message.objects.filter(room__in=rooms, deleted_at=None).exclude(author=alice))
        if kind == "edit" and mine:
            message = rng.choice(mine)
            body = rng.choice(["edited", "edited @alice", "edited @room"])
            services.message_edit(
                room=message.room, user=message.author, message_id=message.pk, body=body
            )
            return f"edit of {message.pk} to {body!r}"
        if kind == "delete" and mine:
            message = rng.choice(mine)
            services.message_delete(room=message.room, user=message.author, message_id=message.pk)
            return f"delete of {message.pk}"
        member = Membership.objects.filter(room=room, user=alice).exists()
        if kind == "read" and member:
            room.refresh_from_db()
            seq = rng.choice([room.last_seq, rng.randint(0, room.last_seq)])
            force = rng.random() < 0.3
            services.room_mark_read(room=room, user=alice, seq=seq, force=force)
            return f"read of {room.pk} to {seq} (force {force})"
        if kind == "mute" and member:
            notify = rng.choice(["all", "mentions", "none"])
            services.membership_set_notify(room=room, user=alice, notify=notify)
            return f"notify {notify} in {room.pk}"
        if kind == "membership":
            if room == other:
                if member:
                    services.room_leave(room=other, user=alice)
                    return "alice left other"
                services.room_join(room=other, user=alice)
                return "alice joined other"
            if room == group:
                if member:
                    services.member_remove(room=group, user=bob, member_id=alice.pk)
                    return "bob removed alice from the group"
                services.member_add(room=group, user=bob, username="alice")
                return "bob added alice to the group"
        return f"{kind}: nothing to do"

    async def tab_on(name: str) -> Tab:
        visible = await database_sync_to_async(
            lambda: [r.pk for r in rooms if selectors.room_is_visible_to(room=r, user=alice)]
        )()
        return await open_tab(name, client, rng.choice([None, *visible]))

    tabs = [await tab_on("A"), await tab_on("B")]
    await settle(tabs, alice, "connecting")
    kinds = ["send"] * 6 + ["own", "edit", "delete"] + ["read"] * 4
    kinds += ["mute", "membership", "membership", "reconnect", "tab read"]
    kinds += ["tab active", "tab active", "tab inactive"]
    for step in range(ACTIONS):
        kind = rng.choice(kinds)
        if kind == "reconnect":
            index = rng.randrange(2)
            await tabs[index].socket.disconnect()
            tabs[index] = await tab_on(tabs[index].name)
            what = f"reconnect of tab {tabs[index].name} (room {tabs[index].room_id})"
        elif kind == "tab read":
            # The page marks read over its socket when the newest messages are in view.
            tab = next((t for t in tabs if t.room_id and t.closed is None), None)
            if tab is None:
                continue
            room = await database_sync_to_async(_room)(tab.room_id)
            await send_json(tab.socket, {"type": "read", "seq": room.last_seq})
            what = f"tab {tab.name} read room {tab.room_id} to {room.last_seq}"
        elif kind in ("tab active", "tab inactive"):
            # Focused at the bottom (or not any more): from here its room's new messages
            # are read as they come, written by the hub in batches.
            viewing = [t for t in tabs if t.room_id and t.closed is None]
            if not viewing:
                continue
            tab = rng.choice(viewing)
            if kind == "tab active":
                room = await database_sync_to_async(_room)(tab.room_id)
                await send_json(tab.socket, {"type": "active", "seq": room.last_seq})
            else:
                await send_json(tab.socket, {"type": "inactive"})
            what = f"{kind} {tab.name} in room {tab.room_id}"
        else:
            what = await act(kind)
        await settle(tabs, alice, f"step {step}: {what}")
        for index, tab in enumerate(tabs):
            if tab.closed is not None:
                # Lost access to its room (4403): the page offers the sidebar; reopen elsewhere.
                assert tab.closed == 4403, f"step {step}: tab {tab.name} closed {tab.closed}"
                await tab.socket.disconnect()
                tabs[index] = await tab_on(tab.name)
                await settle(tabs, alice, f"step {step}: reopening tab {tab.name}")
    for tab in tabs:
        await drain(tab)
    expected = await fresh_page(alice)
    for tab in tabs:
        assert tab.badges == expected, f"at the end: tab {tab.name}"
        await tab.socket.disconnect()
