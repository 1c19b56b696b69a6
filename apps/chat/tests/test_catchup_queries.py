"""A resume after many changes is one frame and a constant number of queries (issue 9).

The timeline is made with the real services: messages (some replying to others), then every
one of them changed — edited, reacted to by several people, a reaction taken back, deleted —
which also re-renders the replies of what was edited or deleted. Sockets then resume, through
the whole ASGI stack, from cursors that leave 50, 200 and all 500 changed messages to catch up
on: each answer is one frame with each message once, at its current version, in version
order, and costs the same number of queries whatever its size."""

import contextlib
import re

import pytest
from channels.db import database_sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections

from apps.chat import realtime, services
from apps.chat.models import Message, Reaction

from .helpers import open_socket, send_json

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = 500
ARTICLE = re.compile(r'<article id="message-(\d+)"([^>]*)>(.*?)</article>', re.S)
VERSION = re.compile(r'data-version="(\d+)"')
BUTTON = re.compile(r"<button\b[^>]*>")
ATTR = re.compile(r'(data-[a-z-]+)="([^"]*)"')
# What answering a resume reads, whatever its size: the changed messages (with their
# authors' profiles and the messages they reply to, select_related) and their reactions
# (with the reacting users' profiles, prefetched) — and, as the page's first resume starts the
# socket's user stream, the user's unread states (one query, selectors.unread_states), read
# while the answer is rendered.
RESUME_QUERIES = 3


@contextlib.asynccontextmanager
async def queries_counted(django_assert_num_queries, count: int, db):
    """``django_assert_num_queries`` on ``db``, the connection of the thread where the
    consumer's database work runs (entering it touches the connection: it must happen there)."""
    counted = django_assert_num_queries(count, connection=db)
    await database_sync_to_async(counted.__enter__)()
    try:
        yield
    except BaseException as exc:
        await database_sync_to_async(counted.__exit__)(type(exc), exc, exc.__traceback__)
        raise
    await database_sync_to_async(counted.__exit__)(None, None, None)


def build_timeline(room, authors) -> int:
    """MESSAGES messages (every seventh replying to the one before), then one change to each —
    an edit, a reaction by one of three people, a delete — and a few more reactions, one taken
    back, on the first ones. Returns the room's seq before the changes."""
    sent = []
    for i in range(MESSAGES):
        reply_to = sent[-1].pk if i % 7 == 6 else None
        result = services.message_send(
            room=room, author=authors[i % 3], body=f"message {i}", reply_to=reply_to
        )
        sent.append(result.message)
    before = room.__class__.objects.get(pk=room.pk).last_seq
    a, b, c = authors
    for i, message in enumerate(sent):
        pk, step = message.pk, i % 5
        if step in (0, 2):
            body = f"**edited** {i}"
            services.message_edit(room=room, user=authors[i % 3], message_id=pk, body=body)
        elif step == 3:
            services.message_delete(room=room, user=authors[i % 3], message_id=pk)
        else:
            user, emoji = ((a, "👍"), (c, "👀"))[step == 4]
            services.reaction_add(room=room, user=user, message_id=pk, emoji=emoji)
        if i < 20 and step == 1:  # several people, one of them changing their mind
            services.reaction_add(room=room, user=b, message_id=pk, emoji="👍")
            services.reaction_add(room=room, user=c, message_id=pk, emoji="🔥")
            services.reaction_remove(room=room, user=c, message_id=pk, emoji="🔥")
            services.reaction_add(room=room, user=c, message_id=pk, emoji="🎉")
    return before


def current_state(room) -> dict[int, dict]:
    """{message id: version, deleted, reactions {emoji: [user ids]}} from the database."""
    state = {
        pk: {"version": version, "deleted": deleted_at is not None, "reactions": {}}
        for pk, version, deleted_at in Message.objects.filter(room=room).values_list(
            "pk", "version", "deleted_at"
        )
    }
    for message_id, emoji, user_id in (
        Reaction.objects.filter(message__room=room)
        .order_by("created_at", "pk")
        .values_list("message_id", "emoji", "user_id")
    ):
        state[message_id]["reactions"].setdefault(emoji, []).append(user_id)
    return state


def cursor_leaving(state: dict[int, dict], count: int, before: int) -> int:
    """The after_seq that leaves exactly ``count`` messages to catch up on (versions are
    unique in a room)."""
    versions = sorted((s["version"] for s in state.values()), reverse=True)
    return versions[count] if count < len(versions) else before


def parse(frame: str) -> list[tuple[int, dict]]:
    articles = []
    for pk, attrs, inner in ARTICLE.findall(frame):
        reactions = {}
        for button in BUTTON.findall(inner):  # a reaction: its emoji and who reacted
            data = dict(ATTR.findall(button))
            if "data-emoji" in data and "data-users" in data:
                reactions[data["data-emoji"]] = [int(u) for u in data["data-users"].split()]
        articles.append(
            (
                int(pk),
                {
                    "version": int(VERSION.search(attrs).group(1)),
                    "deleted": "data-deleted" in attrs,
                    "reactions": reactions,
                },
            )
        )
    return articles


@pytest.fixture
def timeline(public_room, alice, bob, carol, unlimited, settings, monkeypatch):
    settings.PARLEY_REACTION_RATE = (1_000_000, 10)
    with monkeypatch.context() as patch:
        # No socket is open while the timeline is built: its ~1,000 events have no reader
        # (publishing each from this thread would be a third of the test's time).
        patch.setattr(realtime, "publish", lambda group, event, *, lost: None)
        before = build_timeline(public_room, [alice, bob, carol])
    return public_room, before, current_state(public_room)


async def test_a_resume_after_500_changes_is_one_frame_of_current_states_in_constant_queries(
    timeline, alice, bob, django_assert_num_queries
):
    room, before, state = timeline
    assert len(state) == MESSAGES
    assert all(s["version"] > before for s in state.values())  # every message changed
    assert sum(s["deleted"] for s in state.values()) == MESSAGES // 5
    # The consumer reaches the database through database_sync_to_async: one worker thread,
    # whose connection object this is (``connection`` would be this thread's).
    db = await database_sync_to_async(lambda: connections[DEFAULT_DB_ALIAS])()
    sockets = []
    for count in (50, 200, MESSAGES):
        after = cursor_leaving(state, count, before)
        communicator, connected = await open_socket(room.pk, alice)
        assert connected
        sockets.append(communicator)
        async with queries_counted(django_assert_num_queries, RESUME_QUERIES, db):
            await send_json(communicator, {"type": "resume", "after_seq": after})
            frame = await communicator.receive_from(timeout=30)
        articles = parse(frame)
        expected = sorted(
            (pk for pk, s in state.items() if s["version"] > after),
            key=lambda pk: state[pk]["version"],
        )
        assert len(expected) == count
        # Every message once, in version order, each as it is now.
        assert [pk for pk, _ in articles] == expected
        assert dict(articles) == {pk: state[pk] for pk in expected}
        deleted = [pk for pk, s in articles if s["deleted"]]
        assert deleted and all(not dict(articles)[pk]["reactions"] for pk in deleted)
    # Nothing else was queued behind those answers: the next frame each socket gets is the
    # next change, alone.
    probe = await database_sync_to_async(services.message_send)(
        room=room, author=bob, body="after the catch-up"
    )
    for communicator in sockets:
        following = parse(await communicator.receive_from(timeout=5))
        assert [pk for pk, _ in following] == [probe.message.pk]
        await communicator.disconnect()
