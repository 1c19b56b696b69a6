"""Search timings and plans on a database filled with N messages (issue 12's speed check).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_search_bench \
        .venv/bin/python bench/search_explain.py --messages 1000000

Creates the database if needed (PostgreSQL; without DATABASE_URL a SQLite file), migrates, fills
it once with ``--messages`` rows in one ``INSERT … SELECT generate_series`` (40 rooms, 30 of them
public, 10 private groups; bodies of common words plus an md5 fragment; one message in 1000
carries "quetzal"), then times ``search.search_messages`` for a searcher who sees the public
rooms and 5 of the private ones, and prints EXPLAIN ANALYZE of its main statement."""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("PARLEY_SEARCH_RATE_COUNT", "1000000")

QUERIES = {
    "rare (0.1%)": "quetzal",
    "none": "xylophonic",
    "rare phrase + common": '"quetzal" apple',
    "common (~10%)": "banana",
    "2 chars": "qz",
    "from: only": "from:bench1",
}


def ensure_database() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def fill(count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from apps.chat.models import Membership, Message, Room

    if Message.objects.exists():
        return
    User = get_user_model()
    User.objects.filter(username__startswith="bench").delete()  # a fill that failed half-way
    Room.objects.filter(name__startswith="bench-").delete()
    users = [User.objects.create_user(username=f"bench{i}", password="x") for i in range(1, 11)]
    rooms = []
    for i in range(40):
        private = i >= 30
        room = Room.objects.create(name=f"bench-{i}", is_private=private, created_by=users[0])
        rooms.append(room)
        members = users[:2] if private and i < 35 else users[1:3] if private else users[:1]
        for user in members:
            Membership.objects.create(room=room, user=user)
    words = "apple banana cherry delta echo foxtrot golf hotel india juliet kilo lima mike"
    words += " november oscar papa quebec romeo sierra tango"
    vocab = "ARRAY[" + ",".join(f"'{w}'" for w in words.split()) + "]"
    first_room = rooms[0].pk
    started = time.perf_counter()
    body = (
        f"'message ' || g || ' about ' || ({vocab})[1 + (g::bigint * 7919) %% 20] || ' and ' || "
        f"({vocab})[1 + (g::bigint * 104729) %% 20] || ' ref ' || substr(md5(g::text), 1, 12) || "
        "CASE WHEN g %% 1000 = 0 THEN ' the quetzal sighting' ELSE '' END"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            series, seq = "generate_series(1, %s) AS s(g)", "(g - 1) / 40 + 1"
        else:
            series = (
                "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %s)"
                " SELECT g FROM s)"
            )
            seq = "(g - 1) / 40 + 1"
            body = body.replace("substr(md5(g::text), 1, 12)", "hex(g)")
            body = body.replace(f"({vocab})[1 + (g::bigint * 7919) %% 20]", "'apple'")
            body = body.replace(f"({vocab})[1 + (g::bigint * 104729) %% 20]", "'banana'")
        now = "now()" if connection.vendor == "postgresql" else "CURRENT_TIMESTAMP"
        created = (
            f"{now} - make_interval(secs => %s - g)"
            if connection.vendor == "postgresql"
            else "datetime('now', '-' || (%s - g) || ' seconds')"
        )
        cursor.execute(
            "INSERT INTO chat_message (room_id, author_id, seq, version, body, html, "  # noqa: S608
            "search_text, mentions_room, has_attachments, client_id, created_at) "
            f"SELECT {first_room} + (g %% 40), %s + (g %% 10), {seq}, {seq}, b,"
            f" '<p>' || b || '</p>', lower(b), false, false, NULL, {created}"
            f" FROM (SELECT g, {body} AS b FROM {series}) AS t",
            [users[0].pk, count, count],
        )
        cursor.execute("UPDATE chat_room SET last_seq = %s", [count // 40 + 1])
        cursor.execute("ANALYZE" if connection.vendor == "postgresql" else "ANALYZE chat_message")
    print(f"filled {count} messages in {time.perf_counter() - started:.1f} s")


def measure(runs: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from apps.chat import search

    user = get_user_model().objects.get(username="bench1")
    for label, q in QUERIES.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            page = search.search_messages(user=user, q=q)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(
            f"{label:22} q={q!r:22} results={len(page.results):2} "
            f"median={statistics.median(times):7.1f} ms  p95={p95:7.1f} ms"
        )
    if connection.vendor == "postgresql":
        for q in ("quetzal", "xylophonic"):
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as ctx:
                search.search_messages(user=user, q=q)
            sql = max((c["sql"] for c in ctx.captured_queries), key=len)
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                print(f"\nEXPLAIN ANALYZE, q={q!r}:")
                print("\n".join(row[0] for row in cursor.fetchall()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fill(args.messages)
    measure(args.runs)


if __name__ == "__main__":
    main()
