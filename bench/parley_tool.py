"""Parley-side helpers for the benchmark, run in a subprocess with Parley's settings and the
benchmark's DATABASE_URL (so the load generator never imports Django).

    python -m bench.parley_tool setup --users 500 --rooms 44 --members '{"0": [0, 1]}'
                                                # (+ what this tree can do)
    python -m bench.parley_tool fill --count 1000000
    python -m bench.parley_tool pages --session KEY --rooms 3,4 --requests 50
    python -m bench.parley_tool seed --room 44 --users 500 --per-user 2
    python -m bench.parley_tool catchup --messages 500 --repeats 15
    python -m bench.parley_tool searchfill --count 1000000 --rooms 20
    python -m bench.parley_tool search --session KEY --queries '["qzx"]' --requests 50
    python -m bench.parley_tool token
    python -m bench.parley_tool thumbs

Each command prints one JSON object on stdout. bench/run.py runs this file on the code of the
tree the server runs from (PYTHONPATH: this tree, or a --baseline commit's worktree), so what
it writes must suit that tree's schema (``capabilities``, ``fill``)."""

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import re
import statistics
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import (  # noqa: E402
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from apps.chat.models import Membership, Message, Room  # noqa: E402


def capabilities() -> dict:
    """What this tree's Parley can do. ``changes``: issue 9's timeline changes (a message
    version, edits and reactions through the services, the edit/react frames that call them);
    a tree without them is measured by S1-S5 and S7 only (articles with data-seq, no
    data-version)."""
    from apps.chat import services

    fields = {f.name for f in Message._meta.get_fields()}
    changes = {"version", "html"} <= fields and all(
        hasattr(services, name) for name in ("message_edit", "reaction_add", "reaction_remove")
    )
    # Issue 10: read pointers, unread counts on the user's stream (S10).
    sidebar = hasattr(services, "room_mark_read")
    # Issue 10's live reading: a focused page's "active" frame (the server reads for it).
    live = hasattr(services, "rooms_read_live")
    # Issue 11: presence (the hub's presence-watch and activity frames; S11, S13).
    from apps.chat import fanout

    presence = hasattr(fanout.Hub, "presence_watch")
    # Issue 12: search (S14) and attachments (S15).
    try:
        from apps.chat import search as search_module

        search = hasattr(search_module, "search_messages")
    except ImportError:
        search = False
    attachments = importlib.util.find_spec("apps.chat.attachments") is not None
    # Issue 13: room sockets that speak JSON (``?format=json``; S16). An older tree ignores
    # the query and sends HTML.
    from apps.chat import realtime

    json_frames = hasattr(realtime, "json_text") and (
        importlib.util.find_spec("apps.chat.delivery") is not None
        and hasattr(importlib.import_module("apps.chat.delivery"), "JsonWire")
    )
    return {
        "changes": changes,
        "sidebar": sidebar,
        "live": live,
        "presence": presence,
        "search": search,
        "attachments": attachments,
        "json_frames": json_frames,
    }


def setup(users: int, rooms: int, members: dict[int, list[int]] | None = None) -> dict:
    """``users`` users, each with a logged-in session, and ``rooms`` public rooms; and the
    tree's ``capabilities``. ``members``: room index -> the user indices who have joined it
    (people post in the rooms they belong to; every tree has the Membership table)."""
    User = get_user_model()
    sessions = []
    with transaction.atomic():
        owner = None
        for i in range(users):
            user = User(username=f"bench{i:04d}")
            user.set_unusable_password()
            user.save()  # the post_save signal creates the profile
            owner = owner or user
            store = SessionStore()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            sessions.append(store.session_key)
        room_ids = [
            Room.objects.create(name=f"bench room {i}", created_by=owner).pk for i in range(rooms)
        ]
        user_ids = list(
            get_user_model()
            .objects.filter(username__startswith="bench")
            .order_by("username")
            .values_list("pk", flat=True)
        )
        extra = {}
        if "notify" in {f.name for f in Membership._meta.get_fields()}:
            extra["notify"] = "mentions"
        Membership.objects.bulk_create(
            Membership(room_id=room_ids[room], user_id=user_ids[index], **extra)
            for room, indices in (members or {}).items()
            for index in indices
            if index < len(user_ids)
        )
    # The user pks in client-index order (S11 and S13 watch users' dots by pk).
    return {
        "sessions": sessions,
        "users": user_ids,
        "rooms": room_ids,
        "capabilities": capabilities(),
    }


def fill(count: int) -> dict:
    """A room with ``count`` messages, inserted in one SQL statement (seq = version = 1..count,
    the stored HTML as the Markdown renderer would make it; a tree before issue 9 has neither
    column)."""
    owner = get_user_model().objects.order_by("pk").first()
    room = Room.objects.create(name=f"bench history {count}", created_by=owner)
    fields = {f.name for f in Message._meta.get_fields()}
    columns, values = ["room_id", "author_id", "seq"], ["%s", "%s", "g"]
    if "version" in fields:
        columns.append("version")
        values.append("g")
    columns.append("body")
    values.append("'history message number ' || g")
    if "html" in fields:
        columns.append("html")
        values.append("'<p>history message number ' || g || '</p>'")
    if "mentions_room" in fields:  # issue 10 (a Django default, not the column's)
        columns.append("mentions_room")
        values.append("false")
    if "search_text" in fields:  # issue 12: what search matches (the folded body)
        columns += ["search_text", "has_attachments"]
        values += ["'history message number ' || g", "false"]
    columns += ["client_id", "created_at"]
    values += ["NULL", "now() - make_interval(secs => %s - g)"]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO chat_message ({', '.join(columns)}) "  # noqa: S608 - fixed names
            f"SELECT {', '.join(values)} FROM generate_series(1, %s) AS g",
            [room.pk, owner.pk, count, count],
        )
        cursor.execute(
            "UPDATE chat_room SET last_seq = %s, last_message_at = now() WHERE id = %s",
            [count, room.pk],
        )
        cursor.execute("ANALYZE chat_message")
    return {"room": room.pk, "count": count, "seconds": round(time.perf_counter() - started, 2)}


def _measure(client: Client, url: str, requests: int) -> dict:
    times, queries, statuses = [], [], set()
    for _ in range(requests):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        queries.append(len(ctx.captured_queries))
        statuses.add(response.status_code)
    times.sort()
    return {
        "url": url,
        "status": sorted(statuses),
        "queries": max(queries),
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
        "max_ms": round(times[-1], 2),
        "requests": requests,
    }


def pages(session: str, rooms: list[int], requests: int) -> dict:
    """Room page and one history page (from the middle of the room) per room: query count and
    in-process server time (Django's test client, no network)."""
    client = Client()
    client.cookies["sessionid"] = session
    out = {}
    for pk in rooms:
        last_seq = Room.objects.get(pk=pk).last_seq
        client.get(f"/chat/room/{pk}/")  # warm: templates, connection
        out[str(pk)] = {
            "messages": last_seq,
            "room_page": _measure(client, f"/chat/room/{pk}/", requests),
            "history_page": _measure(
                client, f"/chat/room/{pk}/history/?before={last_seq // 2}", requests
            ),
        }
    return out


@contextlib.contextmanager
def unpublished():
    """The services' events are not published: nothing listens to the tool's channel prefix,
    and a group_send per change from this thread would be most of a seed's time."""
    from apps.chat import realtime

    publish = realtime.publish
    realtime.publish = lambda group, event, *, lost: None
    try:
        yield
    finally:
        realtime.publish = publish


def seed(room_pk: int, users: int, per_user: int) -> dict:
    """``per_user`` messages by each of the first ``users`` bench users, through
    ``message_send``: S8's edit and reaction targets. Returns ``[message pk, user index]``
    (user ``bench0042`` is index 42, the load generator's client 42)."""
    from apps.chat import services

    room = Room.objects.get(pk=room_pk)
    authors = list(
        get_user_model().objects.filter(username__startswith="bench").order_by("username")[:users]
    )
    out = []
    with unpublished():
        for round_ in range(per_user):
            for user in authors:
                body = f"S8 target {round_} of {user.username}"
                sent = services.message_send(room=room, author=user, body=body)
                out.append([sent.message.pk, int(user.username[len("bench") :])])
    return {"messages": out}


ARTICLE_ID = re.compile(rb'<article id="message-(\d+)"')
# Reactions the catch-up case adds (all in the shipped list).
CATCHUP_EMOJI = ["\U0001f44d", "\U0001f389", "\U0001f440", "\U0001f525"]


def catchup(messages: int, repeats: int) -> dict:
    """The server time of a websocket ``resume`` answered with ``messages`` messages, in two
    rooms of the same size, measured alternately in this process:

    - *new*: a room with ``messages`` messages, then ``messages`` more sent after the cursor
      (what a resume answered before issue 9);
    - *changed*: a room with ``messages`` messages, all of them changed after the cursor, half
      edited, half given a reaction (by several users: the article lists who reacted).

    Each resume opens a socket on the real ASGI application (``project.asgi``, the whole
    middleware stack; ``channels.testing.WebsocketCommunicator``, no network), sends
    ``{"type": "resume", "after_seq": cursor}`` and times it until every article has arrived.
    The database work runs in this thread (async_to_sync below keeps ``database_sync_to_async``
    here), so ``CaptureQueriesContext`` counts the resume's queries — the handshake's session
    and room lookups are before it."""
    from asgiref.sync import async_to_sync, sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.conf import settings

    from apps.chat import services
    from project.asgi import application

    users = list(get_user_model().objects.filter(username__startswith="bench").order_by("pk")[:8])
    owner, viewer = users[0], users[-1]
    stamp = int(time.time())

    def room_with(name: str) -> Room:
        room = Room.objects.create(name=f"bench catch-up {name} {stamp}", created_by=owner)
        for i in range(messages):
            body = f"catch-up {name} message {i} " + "x" * 150
            services.message_send(room=room, author=users[i % 4], body=body)
        room.refresh_from_db()
        return room

    with unpublished():
        new = room_with("new")
        new_after = new.last_seq
        for i in range(messages):
            body = f"new message {i} " + "y" * 150
            services.message_send(room=new, author=users[i % 4], body=body)
        changed = room_with("changed")
        changed_after = changed.last_seq
        targets = list(changed.messages.order_by("seq").values_list("pk", "author_id"))
        by_pk = {u.pk: u for u in users}
        for i, (pk, author_id) in enumerate(targets):
            if i % 2 == 0:
                body = f"edited message {i} **bold** " + "z" * 150
                author = by_pk[author_id]
                services.message_edit(room=changed, user=author, message_id=pk, body=body)
            else:
                for j in range(3):  # three people react: the article names them
                    user = users[(i + j) % len(users)]
                    emoji = CATCHUP_EMOJI[(i + j) % len(CATCHUP_EMOJI)]
                    services.reaction_add(room=changed, user=user, message_id=pk, emoji=emoji)
    client = Client()
    client.force_login(viewer)
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", cookie)]
    # This thread's connection object (``connection`` is a per-thread proxy, and the coroutine
    # below runs in another thread): the consumer's database work runs here.
    conn = connections[DEFAULT_DB_ALIAS]

    async def resume(room: Room, after: int) -> dict:
        socket = WebsocketCommunicator(application, f"/ws/chat/room/{room.pk}/", headers=headers)
        connected, _ = await socket.connect(timeout=10)
        if not connected:
            raise RuntimeError("the catch-up socket was refused")
        ids: list[bytes] = []
        frames = size = 0
        ctx = CaptureQueriesContext(conn)
        await sync_to_async(ctx.__enter__)()  # it touches the connection: in its thread
        started = time.perf_counter()
        await socket.send_to(text_data=json.dumps({"type": "resume", "after_seq": after}))
        while len(ids) < messages:
            frame = (await socket.receive_from(timeout=60)).encode()
            frames += 1
            size += len(frame)
            ids += ARTICLE_ID.findall(frame)
            if b'id="chat-reload"' in frame:
                break  # past the resume cap: the page would reload instead
        elapsed = time.perf_counter() - started
        await sync_to_async(ctx.__exit__)(None, None, None)
        await socket.disconnect()
        return {
            "ms": elapsed * 1000,
            "queries": len(ctx.captured_queries),
            "frames": frames,
            "articles": len(ids),
            "unique": len(set(ids)),
            "bytes": size,
        }

    async def measure() -> dict[str, list[dict]]:
        runs: dict[str, list[dict]] = {"new": [], "changed": []}
        await resume(new, new_after)  # warm: templates, connection, the hub
        await resume(changed, changed_after)
        for i in range(repeats):
            order = [("new", new, new_after), ("changed", changed, changed_after)]
            for key, room, after in order if i % 2 == 0 else order[::-1]:
                runs[key].append(await resume(room, after))
        return runs

    runs = async_to_sync(measure)()

    def figures(samples: list[dict]) -> dict:
        times = sorted(s["ms"] for s in samples)
        last = samples[-1]
        return {
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
            "max_ms": round(times[-1], 2),
            "queries": max(s["queries"] for s in samples),
            "frames": max(s["frames"] for s in samples),
            "articles": last["articles"],
            "unique_articles": last["unique"],
            "kb": round(last["bytes"] / 1024, 1),
        }

    out = {"messages": messages, "repeats": repeats}
    out["new"], out["changed"] = figures(runs["new"]), figures(runs["changed"])
    out["ratio_p50"] = round(out["changed"]["p50_ms"] / out["new"]["p50_ms"], 2)
    return out


# --- S14: search (issue 12) ----------------------------------------------------------------------
# Every SEARCH_RARE-th message carries the rare words: the 0.1 % queries. The rest of a body is
# its number and 32 hex digits (MD5 on PostgreSQL, random on SQLite): varied trigrams, as text is.
SEARCH_RARE = 1000


def searchfill(count: int, rooms: int) -> dict:
    """``count`` messages over ``rooms`` public rooms and one private room the searcher is not
    in (a twentieth of the messages), in one INSERT … SELECT, with the search text the
    services would store (the bodies are ASCII: folding is lower-casing)."""
    User = get_user_model()
    owner = User.objects.order_by("pk").first()
    room_ids = [
        Room.objects.create(name=f"bench search {i}", created_by=owner).pk for i in range(rooms)
    ]
    stranger, _created = User.objects.get_or_create(username="bench-search-stranger")
    hidden = Room.objects.create(name="", is_private=True, created_by=stranger)
    Membership.objects.create(room=hidden, user=stranger, role="owner")
    room_ids.append(hidden.pk)
    slots = len(room_ids)
    vendor = connection.vendor
    rare = f"CASE WHEN g %% {SEARCH_RARE} = 0 THEN ' needle qzx' ELSE '' END"
    if vendor == "postgresql":
        series = "generate_series(1, %(count)s) AS g"
        noise = "md5(g::text)"
        room_of = f"(ARRAY[{','.join(map(str, room_ids))}])[g %% {slots} + 1]"
        created = "now() - make_interval(secs => %(count)s - g)"
        prefix = ""
    else:
        series = "s"
        noise = "lower(hex(randomblob(16)))"
        room_of = "CASE g %% {n} {cases} END".format(
            n=slots, cases=" ".join(f"WHEN {i} THEN {pk}" for i, pk in enumerate(room_ids))
        )
        created = "datetime('now', '-' || (%(count)s - g) || ' seconds')"
        prefix = (
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %(count)s) "
        )
    body = f"'message ' || g || ' ' || {noise} || {rare}"
    seq = f"(g / {slots}) + 1"
    sql = (
        prefix + "INSERT INTO chat_message (room_id, author_id, seq, version, body, html, "
        "mentions_room, search_text, has_attachments, client_id, created_at) "
        f"SELECT {room_of}, %(author)s, {seq}, {seq}, body, '<p>' || body || '</p>', false, "
        f"body, false, NULL, {created} FROM (SELECT g, {body} AS body FROM {series}) AS b"
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"count": count, "author": owner.pk})
        cursor.execute(
            "UPDATE chat_room SET last_seq = (SELECT coalesce(max(seq), 0) FROM chat_message "
            "WHERE chat_message.room_id = chat_room.id)"
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if vendor == "postgresql" else "ANALYZE chat_message")
    return {
        "rooms": room_ids,
        "count": count,
        "rare_every": SEARCH_RARE,
        "seconds": round(time.perf_counter() - started, 2),
    }


def search(session: str, queries: list[str], requests: int) -> dict:
    """``GET /api/search/?q=`` for each query, ``requests`` times (Django's test client, in
    process): status, results on the first page, queries, p50 / p95 / max ms."""
    from urllib.parse import urlencode

    client = Client()
    client.cookies["sessionid"] = session
    out = {}
    for q in queries:
        url = "/api/search/?" + urlencode({"q": q})
        first = client.get(url)  # warm: connection, plan cache
        page = _measure(client, url, requests)
        if page["status"] != [200]:
            raise RuntimeError(f"search {q!r} answered {page['status']}: {first.content[:300]!r}")
        body = first.json()
        page["results"] = len(body.get("results", []))
        page["more"] = bool(body.get("next"))
        out[q] = page
    return out


# --- S15: uploads (issue 12) ---------------------------------------------------------------------


def token() -> dict:
    """An API token for the first bench user (S15 uploads with it: no CSRF)."""
    from apps.accounts.tokens import token_create

    user = get_user_model().objects.order_by("pk").first()
    _token, secret = token_create(user=user, name="bench")
    return {"token": secret, "user": user.pk}


def _photo(width: int, height: int, fmt: str) -> bytes:
    """An image with a photo's entropy (noise over a gradient) and EXIF with GPS."""
    import io

    from PIL import Image

    noise = Image.effect_noise((width, height), 40).convert("L")
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))
    exif = Image.Exif()
    exif[0x0112] = 1
    exif.get_ifd(0x8825)[2] = (55.0, 45.0, 0.0)  # GPSLatitude
    out = io.BytesIO()
    image.save(out, format=fmt, exif=exif.tobytes(), quality=90)
    return out.getvalue()


def thumbs(repeats: int) -> dict:
    """The in-process time of ``attachment_upload`` (validation, the original re-encoded
    without metadata, the thumbnail, storage writes) for photos of 2, 12 and 24 megapixels
    and a 4K PNG screenshot-sized image: p50 and max ms of ``repeats`` runs each."""
    import tempfile

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import override_settings

    from apps.chat import attachments, services

    user = get_user_model().objects.order_by("pk").first()
    room = services.room_create(name="bench thumbs", creator=user)
    out = {}
    cases = [
        ("jpeg 2 MP", 1600, 1200, "JPEG"),
        ("jpeg 12 MP", 4000, 3000, "JPEG"),
        ("jpeg 24 MP", 6000, 4000, "JPEG"),
        ("png 4K", 3840, 2160, "PNG"),
    ]
    with (
        tempfile.TemporaryDirectory() as media,
        override_settings(MEDIA_ROOT=media, PARLEY_ATTACHMENT_ROOT=media),
    ):
        for label, width, height, fmt in cases:
            data = _photo(width, height, fmt)
            times = []
            for i in range(repeats):
                upload = SimpleUploadedFile(f"photo{i}.{fmt.lower()}", data)
                started = time.perf_counter()
                with unpublished():
                    attachments.attachment_upload(room=room, user=user, upload=upload)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            out[label] = {
                "bytes": len(data),
                "pixels": width * height,
                "p50_ms": round(statistics.median(times), 1),
                "max_ms": round(times[-1], 1),
                "runs": repeats,
            }
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--rooms", type=int, required=True)
    p.add_argument("--members", default="{}", help='JSON {"room index": [user indices]}')
    p = sub.add_parser("fill")
    p.add_argument("--count", type=int, required=True)
    p = sub.add_parser("pages")
    p.add_argument("--session", required=True)
    p.add_argument("--rooms", required=True)
    p.add_argument("--requests", type=int, default=50)
    p = sub.add_parser("seed")
    p.add_argument("--room", type=int, required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--per-user", type=int, default=2)
    p = sub.add_parser("catchup")
    p.add_argument("--messages", type=int, default=500)
    p.add_argument("--repeats", type=int, default=15)
    p = sub.add_parser("searchfill")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rooms", type=int, default=20)
    p = sub.add_parser("search")
    p.add_argument("--session", required=True)
    p.add_argument("--queries", required=True, help="JSON list of queries")
    p.add_argument("--requests", type=int, default=50)
    sub.add_parser("token")
    p = sub.add_parser("thumbs")
    p.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.command == "setup":
        members = {int(k): v for k, v in json.loads(args.members).items()}
        result = setup(args.users, args.rooms, members)
    elif args.command == "fill":
        result = fill(args.count)
    elif args.command == "seed":
        result = seed(args.room, args.users, args.per_user)
    elif args.command == "catchup":
        result = catchup(args.messages, args.repeats)
    elif args.command == "searchfill":
        result = searchfill(args.count, args.rooms)
    elif args.command == "search":
        result = search(args.session, json.loads(args.queries), args.requests)
    elif args.command == "token":
        result = token()
    elif args.command == "thumbs":
        result = thumbs(args.repeats)
    else:
        result = pages(args.session, [int(x) for x in args.rooms.split(",")], args.requests)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
