"""Parley-side helpers for the benchmark, run in a subprocess with Parley's settings and the
benchmark's DATABASE_URL (so the load generator never imports Django).

    python -m bench.parley_tool setup --users 500 --rooms 42
    python -m bench.parley_tool fill --count 1000000
    python -m bench.parley_tool pages --session KEY --rooms 3,4 --requests 50

Each command prints one JSON object on stdout."""

import argparse
import json
import os
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
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from apps.chat.models import Room  # noqa: E402


def setup(users: int, rooms: int) -> dict:
    """``users`` users, each with a logged-in session, and ``rooms`` public rooms."""
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
    return {"sessions": sessions, "rooms": room_ids}


def fill(count: int) -> dict:
    """A room with ``count`` messages, inserted in one SQL statement (seq 1..count)."""
    owner = get_user_model().objects.order_by("pk").first()
    room = Room.objects.create(name=f"bench history {count}", created_by=owner)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO chat_message (room_id, author_id, seq, body, client_id, created_at)
            SELECT %s, %s, g, 'history message number ' || g, NULL,
                   now() - make_interval(secs => %s - g)
            FROM generate_series(1, %s) AS g
            """,
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


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--rooms", type=int, required=True)
    p = sub.add_parser("fill")
    p.add_argument("--count", type=int, required=True)
    p = sub.add_parser("pages")
    p.add_argument("--session", required=True)
    p.add_argument("--rooms", required=True)
    p.add_argument("--requests", type=int, default=50)
    args = parser.parse_args(argv)
    if args.command == "setup":
        result = setup(args.users, args.rooms)
    elif args.command == "fill":
        result = fill(args.count)
    else:
        result = pages(args.session, [int(x) for x in args.rooms.split(",")], args.requests)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
