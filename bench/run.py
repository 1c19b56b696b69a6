"""Benchmark Parley against a raw websockets server (T0) and the Channels tutorial (T1).

    taskset -c 1 .venv/bin/python -m bench.run            # everything (make bench), 15-20 min
    taskset -c 1 .venv/bin/python -m bench.run --quick    # about a minute (make bench-quick)
    ... --targets t2-daphne --scenarios s2,s3 --profile   # py-spy profile of Parley under load

The load generator (this process) runs on core 1, every server on core 0. Each scenario gets a
fresh server process and a Redis prefix of its own that is emptied before and after; Parley
gets a fresh PostgreSQL database ``parley_bench_<pid>`` that is dropped at the end. Results go to
bench/results/latest.json and latest.md. Nothing here asserts on timings.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import psycopg
import redis
import uvloop

from . import loadgen as lg
from .servers import (
    ROOT,
    Server,
    cpu_delta,
    cpu_ms,
    cpu_ms_by_cmdline,
    free_port,
    machine_busy_ms,
    rss_kb,
    server_for,
)

RESULTS = ROOT / "bench" / "results"
TOOL = ROOT / "bench" / "parley_tool.py"
# S8 and S9 against a tree whose Parley has no timeline changes (see Parley.capabilities).
NO_CHANGES = "n/a (baseline predates issue 9)"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
PY = sys.executable

LABELS = {
    "t0": "T0 raw websockets",
    "t1-daphne": "T1 Channels tutorial, daphne",
    "t1-uvicorn": "T1 Channels tutorial, uvicorn (websockets-sansio)",
    "t2": "T2 Parley, production (scripts/serve: uvicorn, websockets-sansio)",
    "t2-daphne": "T2 Parley, daphne",
    "t2-uvicorn-websockets": "T2 Parley, uvicorn --ws websockets",
    "t2-pubsub": "T2 Parley, production server, channels-redis pub/sub layer",
    "t2-base": "T2 Parley at the --baseline commit, production server",
}
ALL_SCENARIOS = [
    "s1", "s2", "s3", "s4", "s5", "s7", "s8", "s10", "s11", "s12", "s13", "s15", "s16",
]  # fmt: skip
# Parley only, on Parley's targets (without --targets only on S8_DEFAULT_TARGETS).
PARLEY_SCENARIOS = {"s8", "s10", "s11", "s12", "s13", "s15", "s16"}
# Parley only, run once per benchmark (not per target) through bench/parley_tool.py.
TOOL_SCENARIOS = ["s6", "s9", "s14"]
# S8 runs on Parley's targets; without --targets only on these (it takes ~4 min a target).
S8_DEFAULT_TARGETS = {"t2", "t2-base"}
# Room keys: 0 = the big room, 1..40 = S4 rooms, 41 = the S5 room, 42 = the S8 room, 43 = the
# S10 room (fresh: its unread counts start at 0 for everyone), 44 and 45 = S16's rooms (HTML
# pages, JSON bots: other users each, so neither room moves the other's sidebars).
S8_ROOM = 42
S10_ROOM = 43
S16_HTML_ROOM = 44
S16_JSON_ROOM = 45
ROOMS = 46
# S10 against a tree without read pointers and the user's stream (see Parley.capabilities).
NO_SIDEBAR = "n/a (baseline predates issue 10)"
# S11's rooms follow the others (keys S11_ROOM0..; created only when S11 runs), and S11/S13
# against a tree without presence.
S11_ROOM0 = ROOMS
NO_PRESENCE = "n/a (baseline predates issue 11)"
# S16 against a tree without JSON room sockets (?format=json is ignored there: HTML frames).
NO_JSON = "n/a (baseline predates issue 13)"

FULL = {
    "targets": ["t0", "t1-daphne", "t1-uvicorn", "t2", "t2-daphne"],
    "clients": 500,
    "storm_concurrency": 100,
    "connect_concurrency": 25,
    "s2_rate": 10,
    "s2_seconds": 20,
    # fmt: off
    "s3_steps": [
        250,
        500,
        750,
        1000,
        1500,
        2000,
        3000,
        4000,
        5000,
        7500,
        10_000,
        15_000,
        20_000,
        30_000,
        40_000,
        50_000,
        60_000,
        80_000,
        100_000,
        120_000,
        140_000,
    ],
    # fmt: on
    "s3_step_seconds": 6,
    "s3_refine": True,
    "drain_seconds": 4,
    "s4_rooms": 40,
    "s4_room_size": 5,
    "s4_rate_per_room": 2,
    "s4_seconds": 15,
    "s5_rate": 10,
    "s5_seconds": 10,
    "s6_sizes": [10_000, 1_000_000],
    "s6_requests": 50,
    "s7_seconds": 30,
    # S8: the share of events that are edits and reactions, the messages each client owns
    # (the edit and reaction targets), and the ramp as fractions of the messages-only ceiling
    # (S3's of this run, else a coarse ramp of S8's own).
    "s8_fraction": 0.2,
    "s8_pool_per_client": 2,
    # About 10 % apart from 1.0 on (the resolution of the ratio), then on up by 10 % a step
    # until the ceilings are found (s8_extend).
    "s8_fractions": [0.7, 0.85, 1.0, 1.1, 1.2, 1.3, 1.45, 1.6],
    "s8_extend": True,
    # S9: messages in each resume, and how many times each resume is measured (alternating).
    "s9_messages": 500,
    "s9_repeats": 15,
    # S14 (issue 12): search over this many messages (PostgreSQL, then the same on SQLite),
    # each query this many times; S15: the upload sizes.
    "s14_count": 1_000_000,
    "s14_requests": 50,
    "s14_sqlite_requests": 5,  # a scan of 1M rows a request: reported, not targeted
    "s15_file_mb": 25,
    "s15_thumb_repeats": 5,
    # S10: a fifth of the clients view the room, the rest view other rooms with its unread
    # badge live in their sidebars; at the S2 rate for this long. Below the unread cap (100):
    # every message moves every badge.
    "s10_seconds": 9,
    # S12 (issue 11): typing. A tenth of S2's room types continuously (a typing frame every
    # 3 s each, as a page does); each half-run with and without typing lasts this long.
    "s12_seconds": 10,
    "s12_typist_share": 0.1,
    "s12_typing_period": 3.0,
    # S11: this many connected users (the extra users, beyond "clients", and the S11 rooms
    # are created only when S11 runs), members of s11_rooms rooms (user i of room i % rooms);
    # three in four view their room, the fourth is on a page without one (/ws/user/). Each
    # watches 5-10 other users' dots and sends "activity" once every s11_activity_period
    # seconds (the page: once a minute at most; 10 s is 6x its rate). An idle window (no
    # activity frames) then a presence window, s11_seconds each.
    "s11_users": 1000,
    "s11_rooms": 250,
    "s11_watch": [5, 10],
    "s11_activity_period": 10.0,
    "s11_seconds": 20,
    "s11_slices": 4,
    # S13: user X connects, stays 0.5 s and leaves, once a second for s13_seconds, while a
    # watcher shows X's dot; then s13_tail_seconds more (the last close's grace and window).
    "s13_seconds": 60,
    "s13_tail_seconds": 12,
    # S16 (issue 13): JSON frames. Two rooms of "clients" each, all connected: pages (HTML,
    # S2's path) and bots (?format=json); at the S2 rate s16_seconds of each, in s16_slices
    # slices per kind interleaved html, json, json, html, … Then a step ramp, both kinds at
    # each step (the order alternating): these fractions of this run's S3 ceiling, or without
    # S3 in the run these deliveries/s; up while either kind sustains the step.
    "s16_seconds": 20,
    "s16_slices": 4,
    "s16_idle_seconds": 5,
    "s16_fractions": [0.8, 1.0, 1.25],
    "s16_steps": [5_000, 10_000, 20_000, 30_000, 40_000],
    # S2 and S10 measure the steady state: first this much traffic at their rate, unmeasured
    # (S10: at most 1 s, its badges must stay below the cap). After a connect storm the
    # collector's first full pass over the new sockets' objects (~100k, 60-100 ms here) comes
    # with the first seconds of traffic; S1 measures connecting.
    "warmup_seconds": 3,
}
QUICK = {
    **FULL,
    "targets": ["t0", "t1-uvicorn", "t2"],
    "clients": 40,
    "storm_concurrency": 20,
    "connect_concurrency": 20,
    "s2_seconds": 2,
    "s3_steps": [200, 400],
    "s3_step_seconds": 1.5,
    "s3_refine": False,
    "drain_seconds": 2,
    "s4_rooms": 4,
    "s4_seconds": 2,
    "s5_seconds": 2,
    "s6_sizes": [1_000, 10_000],
    "s6_requests": 5,
    "s7_seconds": 3,
    "s8_fractions": [1.0],
    "s8_extend": False,
    "s9_messages": 50,
    "s9_repeats": 2,
    "s14_count": 10_000,
    "s14_requests": 5,
    "s14_sqlite_requests": 2,
    "s15_file_mb": 5,
    "s15_thumb_repeats": 1,
    "s10_seconds": 2,
    "s12_seconds": 2,
    "s11_users": 60,
    "s11_rooms": 10,
    "s11_activity_period": 3.0,
    "s11_seconds": 3,
    "s11_slices": 1,
    "s13_seconds": 10,
    "s13_tail_seconds": 7,
    "s16_seconds": 2,
    "s16_slices": 1,
    "s16_idle_seconds": 1,
    "s16_fractions": [1.0],
    "s16_steps": [400],
    "warmup_seconds": 0.5,
}
P99_LIMIT_MS = 250.0
PROFILE_RATE = 100  # py-spy samples per second (--profile)
SUSTAINED_P99_MS = 1000.0

T_START = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T_START:6.1f}s] {text}", flush=True)


def per_1k(ms: float, deliveries: int) -> float | None:
    return round(ms * 1000 / deliveries, 1) if deliveries else None


# --- shared services ------------------------------------------------------------------------


class Redis:
    def __init__(self) -> None:
        self.client = redis.Redis.from_url(REDIS_URL)
        self.client.ping()
        self.pid = int(self.client.info("server")["process_id"])

    def clean(self, prefix: str) -> int:
        keys = list(self.client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            self.client.delete(*keys[i : i + 500])
        return len(keys)

    def group_members(self, prefix: str) -> int:
        """Members of every channels-redis group under ``prefix`` (sorted sets
        ``<prefix>:group:<name>``)."""
        return sum(self.client.zcard(k) for k in self.client.scan_iter(match=f"{prefix}:group:*"))

    def commands(self) -> int:
        """Commands Redis has processed since it started (every client's: Redis is shared)."""
        return int(self.client.info("stats")["total_commands_processed"])

    @contextlib.contextmanager
    def monitor(self, prefix: str):
        """Counts, in a thread, the commands that name ``prefix`` (a server's channel layer
        and cache keys) as MONITOR shows them, the commands scripts run excluded: one server's
        commands on a shared Redis. Yields a ``Counter`` whose ``"commands"`` grows, and
        ``"presence"``: those that name a presence entry (``presence:<user id>``)."""
        counts: Counter = Counter(commands=0, presence=0, presence_mset=0)  # (keys fixed)
        stop = threading.Event()
        conn = redis.Redis.from_url(REDIS_URL).connection_pool.get_connection("MONITOR")
        conn.send_command("MONITOR")
        conn.read_response()  # OK
        sock = conn._sock
        sock.settimeout(0.2)
        needle = prefix.encode()

        def run() -> None:
            buf = b""
            while not stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    continue
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\r\n")
                for line in lines:
                    if needle in line and b" lua] " not in line:
                        counts["commands"] += 1
                        if b":presence:" in line:
                            counts["presence"] += 1
                            counts["presence_mset"] += b'"MSET"' in line.upper()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield counts
        finally:
            stop.set()
            thread.join(timeout=2)
            conn.disconnect()


class Parley:
    """A fresh PostgreSQL database with users, sessions and rooms for T2, migrated and filled
    by the tree the server runs from (``root``: this one, or the --baseline commit's worktree,
    which gets a database of its own: its code writes the columns of its own migrations).

    ``capabilities`` is what that tree's code can do, as bench/parley_tool.py setup found it
    there: ``changes`` (issue 9: message versions, edit and reaction frames) decides whether S8
    and S9 run against it."""

    def __init__(
        self,
        clients: int,
        rooms: int,
        *,
        members: dict[int, list[int]] | None = None,
        root: Path = ROOT,
        tag: str = "",
    ) -> None:
        # parley_bench_base_<pid>: the name must not contain the other's (PostgreSQL CPU is
        # summed over the backends whose title contains the database name).
        self.name = f"parley_bench_{tag + '_' if tag else ''}{os.getpid()}"
        self.url = f"{PG_URL}/{self.name}"
        self.root = Path(root)
        self.media = tempfile.mkdtemp(prefix=f"{self.name}-media-")  # S15's uploads
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True
        env = {**os.environ, **self.env("bench-setup")}
        say(f"T2: migrating {self.name} (from {self.root})")
        subprocess.run(  # noqa: S603
            [PY, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=self.root,
            env=env,
            check=True,
        )
        say(f"T2: creating {clients} users with sessions and {rooms} rooms")
        data = self.tool(
            "setup", "--users", str(clients), "--rooms", str(rooms),
            "--members", json.dumps(members or {}),
        )  # fmt: skip
        self.sessions: list[str] = data["sessions"]
        self.users: list[int] = data.get("users", [])  # user pks, by client index
        self.rooms: list[int] = data["rooms"]
        self.capabilities: dict[str, bool] = data["capabilities"]
        if not self.capabilities["changes"]:
            say(f"T2: {self.root} predates issue 9 (no message versions): S8 and S9 are n/a")
        if not self.capabilities.get("sidebar"):
            say(f"T2: {self.root} predates issue 10 (no read pointers): S10 is n/a")
        if not self.capabilities.get("presence"):
            say(f"T2: {self.root} predates issue 11 (no presence): S11 and S13 are n/a")
        if not self.capabilities.get("json_frames"):
            say(f"T2: {self.root} predates issue 13 (no ?format=json): S16 is n/a")

    def env(self, prefix: str) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_SECRET_KEY": "bench-not-a-secret-" + "x" * 40,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_SECURE_COOKIES": "0",
            "DJANGO_HSTS_SECONDS": "0",
            "DATABASE_URL": self.url,
            "REDIS_URL": REDIS_URL,
            "PARLEY_CHANNEL_PREFIX": prefix,
            "PARLEY_CACHE_PREFIX": prefix,
            "PARLEY_MESSAGE_RATE_COUNT": "1000000000",
            "PARLEY_REACTION_RATE_COUNT": "1000000000",
            "PARLEY_ATTACHMENT_RATE_COUNT": "1000000000",
            "PARLEY_SEARCH_RATE_COUNT": "1000000000",
            "DJANGO_MEDIA_ROOT": self.media,
            "PARLEY_ATTACHMENT_ROOT": self.media,
        }

    def tool(self, *args: str, pin: bool = False) -> dict:
        # This tree's tool, on the server's tree's code (PYTHONPATH): a baseline's own
        # bench/ may lack commands or write columns its schema does not have.
        argv = [PY, str(TOOL), *args]
        if pin:
            argv = ["taskset", "-c", "0", *argv]
        out = subprocess.run(  # noqa: S603
            argv,
            cwd=self.root,
            env={**os.environ, **self.env("bench-tool"), "PYTHONPATH": str(self.root)},
            check=False,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if out.returncode:
            raise RuntimeError(f"bench.parley_tool {args[0]} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout)

    def tool_env(self, env: dict[str, str], *args: str, pin: bool = False) -> dict:
        """``tool`` with ``env`` over the benchmark's (S14's SQLite database). ``migrate``
        runs this tree's migrations there and returns {}."""
        full = {**os.environ, **self.env("bench-tool"), "PYTHONPATH": str(self.root), **env}
        if args[0] == "migrate":
            subprocess.run(  # noqa: S603
                [PY, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=self.root, env=full, check=True,
            )  # fmt: skip
            return {}
        argv = [PY, str(TOOL), *args]
        if pin:
            argv = ["taskset", "-c", "0", *argv]
        out = subprocess.run(  # noqa: S603
            argv, cwd=self.root, env=full, check=False, capture_output=True, text=True,
            timeout=1800,
        )  # fmt: skip
        if out.returncode:
            raise RuntimeError(f"bench.parley_tool {args[0]} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout)

    def last_seq(self) -> dict[int, int]:
        with psycopg.connect(self.url) as conn:
            return dict(conn.execute("SELECT id, last_seq FROM chat_room").fetchall())

    def drop(self) -> None:
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        shutil.rmtree(self.media, ignore_errors=True)


# --- one target -------------------------------------------------------------------------------


class Target:
    def __init__(self, name: str, cfg: dict, rds: Redis, parley: Parley | None) -> None:
        self.name = name
        self.kind = name.split("-")[0]
        self.cfg = cfg
        self.redis = rds
        self.parley = parley
        self.prefix = f"bench{os.getpid()}-{name}"
        self.server: Server | None = None
        self.sink = lg.Sink()
        self._id = 0
        self.profile = False
        self.room_keys: dict[int, int] = {}
        self.results: dict = {}  # this target's results so far in this run (S8 reads S3's)

    def next_id(self) -> int:
        self._id += 1
        return self._id

    def protocol(self) -> lg.Protocol:
        port = self.server.port
        if self.kind == "t0":
            return lg.raw_protocol(port)
        if self.kind == "t1":
            return lg.tutorial_protocol(port)
        room_ids = dict(enumerate(self.parley.rooms))
        return lg.parley_protocol(
            port,
            self.parley.sessions,
            room_ids,
            self.parley.last_seq(),
            live=self.parley.capabilities.get("live", False),
            json_rooms=frozenset({S16_JSON_ROOM}),
        )

    def env(self) -> dict[str, str]:
        if self.kind == "t1":
            return {
                "DJANGO_SETTINGS_MODULE": "bench.targets.t1_tutorial.settings",
                "BENCH_CHANNEL_PREFIX": self.prefix,
            }
        if self.kind == "t2":
            env = self.parley.env(self.prefix)
            if self.name == "t2-pubsub":
                env["PARLEY_CHANNEL_LAYER"] = "pubsub"
            return env
        return {}

    @contextlib.asynccontextmanager
    async def fresh_server(self, scenario: str):
        self.redis.clean(self.prefix)
        port = free_port()
        log = RESULTS / "logs" / f"{self.name}.log"
        root = self.parley.root if self.kind == "t2" else None
        self.server = server_for(self.name, port, self.env(), log, root=root)
        self.server.start()
        try:
            # One connection first: imports, DB connection and templates are warm afterwards.
            warm = await lg.connect_many(self.protocol(), [(0, 0)], lg.Sink(), concurrency=1)
            await asyncio.sleep(0.3)
            for c in warm.clients:
                c.close()
            if warm.failures:
                raise RuntimeError(f"{self.name}: warm-up connection failed: {warm.failures}")
            await asyncio.sleep(0.3)
            yield self.server
        finally:
            self.server.stop()
            self.redis.clean(self.prefix)

    def cpu(self) -> dict[str, float]:
        snap = {
            "server": cpu_ms(self.server.pid),
            "redis": cpu_ms(self.redis.pid),
            "loadgen": time.process_time() * 1000,
            "wall": time.monotonic() * 1000,
            "machine": machine_busy_ms(),
            "postgres": cpu_ms_by_cmdline(self.parley.name) if self.parley else {},
        }
        return snap

    def cpu_report(self, before: dict, after: dict, deliveries: int) -> dict:
        wall = after["wall"] - before["wall"]
        out = {
            "server_cpu_pct": round(100 * (after["server"] - before["server"]) / wall, 1),
            "loadgen_cpu_pct": round(100 * (after["loadgen"] - before["loadgen"]) / wall, 1),
            "server_cpu_ms_per_1k": per_1k(after["server"] - before["server"], deliveries),
            "redis_cpu_ms_per_1k": per_1k(after["redis"] - before["redis"], deliveries),
        }
        if self.kind == "t2":
            out["postgres_cpu_ms_per_1k"] = per_1k(
                cpu_delta(before["postgres"], after["postgres"]), deliveries
            )
        # Whatever else ran on the machine (other processes, kernel softirq for loopback
        # traffic): a high figure means the run was disturbed.
        ours = sum(after[k] - before[k] for k in ("server", "redis", "loadgen"))
        ours += cpu_delta(before["postgres"], after["postgres"])
        out["other_cpu_pct"] = round(100 * (after["machine"] - before["machine"] - ours) / wall, 1)
        return out

    async def quiesce(self, timeout: float = 15.0) -> None:
        """Wait until the server is idle again (a failed ramp step leaves a backlog)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            a = cpu_ms(self.server.pid)
            await asyncio.sleep(0.5)
            if cpu_ms(self.server.pid) - a < 50:  # < 10 % of a core
                return

    async def connect_room(self, n: int, *, room: int = 0, concurrency: int | None = None):
        res = await lg.connect_many(
            self.protocol(),
            [(i, room) for i in range(n)],
            self.sink,
            concurrency=concurrency or self.cfg["connect_concurrency"],
        )
        await asyncio.sleep(1.0)  # accepted sockets settle; T2 answers the resume frames
        return res

    def groups(self) -> int | None:
        return None if self.kind == "t0" else self.redis.group_members(self.prefix)

    @staticmethod
    def closed(clients) -> dict:
        codes = Counter(c.close_code for c in clients if not c.open)
        return {str(k): v for k, v in codes.items()}

    async def warm_up(self, rooms, sink: lg.Sink, seconds: float) -> int:
        """Unmeasured traffic at the S2 rate (the sink counts none of it), then a quiet
        second for it to drain. Returns how many messages it sent."""
        if seconds <= 0:
            return 0
        sink.open_window(1 << 62)
        sent = await lg.open_loop(
            self.proto,
            rooms,
            sink,
            rate=self.cfg["s2_rate"],
            seconds=seconds,
            next_id=self.next_id,
        )
        await asyncio.sleep(1.0)
        return sent["messages"]

    async def measure(
        self, rooms, *, rate: float, seconds: float, senders=None, extra=None
    ) -> dict:
        """``rate`` messages/s into ``rooms`` for ``seconds``, open loop: the sink's summary,
        the CPU per delivery; ``extra()``: more of the window's figures, read before the sink
        is reset."""
        self.sink.open_window(self._id + 1)
        before = self.cpu()
        sent = await lg.open_loop(
            self.proto,
            rooms,
            self.sink,
            rate=rate,
            seconds=seconds,
            next_id=self.next_id,
            senders=senders,
        )
        await lg.drain(self.sink, timeout=self.cfg["drain_seconds"])
        after = self.cpu()
        result = lg.summary(self.sink)
        result.update(sent)
        result["rate_msgs"] = rate
        result["deliveries_per_s"] = round(result["delivered"] / seconds)
        result.update(self.cpu_report(before, after, result["delivered"]))
        result["server_cpu_ms"] = round(after["server"] - before["server"], 1)
        result["wall_ms"] = round(after["wall"] - before["wall"], 1)
        if extra is not None:
            result.update(extra())
        self.sink.open_window(1 << 62)
        return result

    async def measure_changes(
        self, sink: lg.ChangeSink, clients, pool: lg.Pool, *, rate: float, seconds: float,
        fraction: float,
    ) -> dict:  # fmt: skip
        """``measure`` for S8: ``fraction`` of the events are edits and reactions."""
        sink.open_window()
        before = self.cpu()
        sent = await lg.changes_loop(
            self.proto,
            clients,
            sink,
            pool,
            rate=rate,
            seconds=seconds,
            fraction=fraction,
            next_id=self.next_id,
        )
        await lg.drain(sink, timeout=self.cfg["drain_seconds"])
        after = self.cpu()
        sink.close_window()
        result = lg.summary(sink)
        result.update(sent)
        result["by_kind"] = lg.kind_summary(sink)
        result["fraction"] = fraction
        result["rate_msgs"] = rate
        result["deliveries_per_s"] = round(result["delivered"] / seconds)
        result.update(self.cpu_report(before, after, result["delivered"]))
        return result

    # --- scenarios ---------------------------------------------------------------------------

    async def s1(self) -> dict:
        """Connect storm: N clients, ``storm_concurrency`` handshakes in flight; then all close
        at once and we count the group members left behind."""
        n = self.cfg["clients"]
        async with self.fresh_server("s1") as server:
            self.proto = self.protocol()
            rss0 = rss_kb(server.pid)
            res = await lg.connect_many(
                self.proto,
                [(i, 0) for i in range(n)],
                self.sink,
                concurrency=self.cfg["storm_concurrency"],
            )
            await asyncio.sleep(1.5)
            open_clients = [c for c in res.clients if c.open]
            rss1 = rss_kb(server.pid)
            members = self.groups()
            closed = self.closed(res.clients)
            for c in res.clients:
                c.close()
            ghosts = members
            deadline = time.monotonic() + 10
            while ghosts and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                ghosts = self.groups()
            await asyncio.sleep(0.5)
            ghosts = self.groups()
        failures = dict(res.failures)
        if closed:
            failures["closed after accept"] = sum(closed.values())
        return {
            "clients": n,
            "connected": len(open_clients),
            "failures": n - len(open_clients),
            "failure_reasons": failures,
            "close_codes": closed,
            "seconds": round(res.seconds, 2),
            "rss_before_kb": rss0,
            "rss_after_kb": rss1,
            "kb_per_connection": round((rss1 - rss0) / len(open_clients), 1)
            if open_clients
            else None,
            "group_members_while_connected": members,
            "ghost_members_after_disconnect": ghosts,
        }

    async def s2(self) -> dict:
        """Steady fan-out: one room of N clients, ``s2_rate`` messages per second."""
        n = self.cfg["clients"]
        async with self.fresh_server("s2"):
            self.proto = self.protocol()
            res = await self.connect_room(n)
            clients = [c for c in res.clients if c.open]
            await self.quiesce()  # the steady state, not the tail of the connect storm
            await self.warm_up({0: clients}, self.sink, self.cfg["warmup_seconds"])
            with self.profiling("s2"):
                result = await self.measure(
                    {0: clients}, rate=self.cfg["s2_rate"], seconds=self.cfg["s2_seconds"]
                )
            result["clients"] = len(clients)
            result["connect_failures"] = n - len(clients)
            result["closed_during_run"] = self.closed(clients)
            for c in res.clients:
                c.close()
        return result

    async def s3(self) -> dict:
        """Ramp the big room in steps of deliveries/s. Two ceilings:

        - the issue's: the best step with p99 ≤ 250 ms and no loss. In a room of 500 every
          message is a burst of 500 deliveries, so this is mostly a per-recipient cost budget
          (500 × cost < 250 ms) and can be 0 at any rate;
        - the sustained throughput: the best step the server keeps up with (no loss, p99 ≤ 1 s).
          The ramp stops at the first step that is not sustained; one bisection step refines
          the latency ceiling in the full run."""
        n = self.cfg["clients"]
        steps = []
        async with self.fresh_server("s3"):
            self.proto = self.protocol()
            res = await self.connect_room(n)
            clients = [c for c in res.clients if c.open]

            async def step(target: int) -> dict:
                await self.quiesce()
                live = [c for c in clients if c.open]
                rate = target / max(1, len(live))
                seconds = max(self.cfg["s3_step_seconds"], 8 / rate)  # at least 8 messages
                say(f"  {self.name} S3 step {target} deliveries/s ({rate:.2f} msg/s)")
                r = await self.measure({0: live}, rate=rate, seconds=seconds)
                r["target_deliveries_per_s"] = target
                r["clients"] = len(live)
                ok = r["lost"] == 0 and r["p99_ms"] is not None and len(live) == len(clients)
                r["sustained"] = ok and r["p99_ms"] <= SUSTAINED_P99_MS
                r["passed"] = ok and r["p99_ms"] <= P99_LIMIT_MS
                steps.append(r)
                return r

            with self.profiling("s3"):
                best = first_fail = None
                for target in self.cfg["s3_steps"]:
                    r = await step(target)
                    if r["passed"] and first_fail is None:
                        best = target
                    elif not r["passed"] and first_fail is None:
                        first_fail = target
                    if not r["sustained"]:
                        break
                if self.cfg["s3_refine"] and best and first_fail:
                    await step((best + first_fail) // 2)
            for c in res.clients:
                c.close()

        def top(key: str) -> dict | None:
            ok = [s for s in steps if s[key]]
            return max(ok, key=lambda s: s["target_deliveries_per_s"]) if ok else None

        ceiling, sustained = top("passed"), top("sustained")
        at_1k = next((s for s in steps if s["target_deliveries_per_s"] == 1000), None)
        cost = (sustained or {}).get("server_cpu_ms_per_1k")
        return {
            "clients": len(clients),
            "ceiling_deliveries_per_s": ceiling["deliveries_per_s"] if ceiling else 0,
            "ceiling_step": ceiling,
            "sustained_deliveries_per_s": sustained["deliveries_per_s"] if sustained else 0,
            "sustained_step": sustained,
            # What one fully used core would deliver at the measured per-delivery cost.
            "cpu_bound_estimate_per_s": round(1_000_000 / cost) if cost else None,
            "at_1k": at_1k,
            "steps": steps,
            "loadgen_limited": any(s["loadgen_cpu_pct"] > 90 for s in steps),
        }

    async def s4(self) -> dict:
        """Many small rooms: ``s4_rooms`` rooms × ``s4_room_size`` clients."""
        rooms_n, size = self.cfg["s4_rooms"], self.cfg["s4_room_size"]
        async with self.fresh_server("s4"):
            self.proto = self.protocol()
            plan = [(r * size + j, 1 + r) for r in range(rooms_n) for j in range(size)]
            res = await lg.connect_many(
                self.proto, plan, self.sink, concurrency=self.cfg["connect_concurrency"]
            )
            await asyncio.sleep(1.0)
            rooms: dict[int, list] = {}
            for c in res.clients:
                if c.open:
                    rooms.setdefault(c.room, []).append(c)
            result = await self.measure(
                rooms,
                rate=self.cfg["s4_rate_per_room"] * rooms_n,
                seconds=self.cfg["s4_seconds"],
            )
            result["rooms"] = rooms_n
            result["room_size"] = size
            result["connect_failures"] = len(plan) - sum(len(v) for v in rooms.values())
            for c in res.clients:
                c.close()
        return result

    async def s5(self) -> dict:
        """Send → echo to the sender (for Parley: persisted first), one client in its room."""
        async with self.fresh_server("s5"):
            self.proto = self.protocol()
            res = await self.connect_room(1, room=41)
            result = await self.measure(
                {41: res.clients}, rate=self.cfg["s5_rate"], seconds=self.cfg["s5_seconds"]
            )
            for c in res.clients:
                c.close()
        return result

    async def s7(self) -> dict:
        """One of N clients stops reading while the room runs at the S2 rate: the others'
        latency and the server's memory."""
        n = self.cfg["clients"]
        async with self.fresh_server("s7") as server:
            self.proto = self.protocol()
            res = await self.connect_room(n)
            clients = [c for c in res.clients if c.open]
            stalled, others = clients[0], clients[1:]
            stalled.stop_reading()
            rss: list[int] = [rss_kb(server.pid)]

            async def sample() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    rss.append(rss_kb(server.pid))

            sampler = asyncio.create_task(sample())
            try:
                result = await self.measure(
                    {0: others},
                    rate=self.cfg["s2_rate"],
                    seconds=self.cfg["s7_seconds"],
                    senders={0: others},
                )
            finally:
                sampler.cancel()
            rss.append(rss_kb(server.pid))
            result["clients"] = len(clients)
            result["rss_start_kb"] = rss[0]
            result["rss_max_kb"] = max(rss)
            result["rss_end_kb"] = rss[-1]
            result["closed_during_run"] = self.closed(others)
            for c in res.clients:
                c.close()
        return result

    async def s8(self) -> dict | None:
        """Timeline changes (issue 9): one room of N clients where ``s8_fraction`` of the
        events are edits (by the author, of their own earlier message) and reactions (toggled
        on and off), the rest new messages; every change is delivered as the message's whole
        article, counted by version (loadgen.ChangeSink).

        In one server process, interleaved (messages-only, mixed; then mixed, messages-only
        at the next step, so drift favours neither): the S2 rate, then a ramp at fractions of
        the messages-only ceiling (this run's S3, else a coarse messages-only ramp first). Both
        ceilings use S3's rule (p99 ≤ 250 ms, no loss); the figure is their ratio."""
        if self.kind != "t2":
            return None
        if not self.parley.capabilities["changes"]:
            return {"skipped": NO_CHANGES}
        n = self.cfg["clients"]
        pk = self.parley.rooms[S8_ROOM]
        say(f"  {self.name} S8: seeding {self.cfg['s8_pool_per_client']} messages per client")
        seeded = self.parley.tool(
            "seed", "--room", str(pk), "--users", str(n),
            "--per-user", str(self.cfg["s8_pool_per_client"]),
        )  # fmt: skip
        say(f"  {self.name} S8: {len(seeded['messages'])} messages seeded")
        sink = lg.ChangeSink()
        async with self.fresh_server("s8"):
            self.proto = self.protocol()  # resumes after the seeds
            res = await lg.connect_many(
                self.proto, [(i, S8_ROOM) for i in range(n)], sink,
                concurrency=self.cfg["connect_concurrency"],
            )  # fmt: skip
            await asyncio.sleep(1.0)
            clients = [c for c in res.clients if c.open]
            pool = lg.Pool([(m, a) for m, a in seeded["messages"] if a < n])
            fraction = self.cfg["s8_fraction"]

            async def run(kind: str, rate: float, seconds: float) -> dict:
                await self.quiesce()
                live = [c for c in clients if c.open]
                r = await self.measure_changes(
                    sink, live, pool, rate=rate, seconds=seconds,
                    fraction=fraction if kind == "mixed" else 0.0,
                )  # fmt: skip
                r["clients"] = len(live)
                ok = r["lost"] == 0 and r["p99_ms"] is not None and len(live) == len(clients)
                ok = ok and not r["by_kind"]["stale"] and not r["by_kind"]["error_frames"]
                r["sustained"] = ok and r["p99_ms"] <= SUSTAINED_P99_MS
                r["passed"] = ok and r["p99_ms"] <= P99_LIMIT_MS
                return r

            with self.profiling("s8"):
                at_s2 = {}
                for kind in ("messages", "mixed"):
                    at_s2[kind] = await run(kind, self.cfg["s2_rate"], self.cfg["s2_seconds"])
                    say(f"  {self.name} S8 at the S2 rate, {kind}: " + brief("s8", at_s2[kind]))
                base = (self.results.get("s3") or {}).get("ceiling_deliveries_per_s")
                base_from = "s3"
                steps: list[dict] = []
                if not base:
                    base_from = "s8 coarse ramp"
                    for target in self.cfg["s3_steps"]:
                        r = await self._s8_step(run, "messages", target, len(clients))
                        r["coarse"] = True
                        steps.append(r)
                        if r["passed"]:
                            base = r["target_deliveries_per_s"]
                        if not r["sustained"]:
                            break
                # The fractions, then on up by 10 % a step until two steps in a row pass for
                # neither kind: each ceiling is then found, not the top of the ramp.
                targets = [round(base * f) for f in self.cfg["s8_fractions"]] if base else []
                failed_in_a_row = i = 0
                while i < len(targets) and failed_in_a_row < 2:
                    kinds = ("messages", "mixed") if i % 2 == 0 else ("mixed", "messages")
                    both = [await self._s8_step(run, k, targets[i], len(clients)) for k in kinds]
                    if both[0]["passed"] != both[1]["passed"]:
                        # One kind passed, the other not: on this shared machine one stall
                        # (another process on the server's core) decides that. The one that
                        # failed gets a second try at the same rate; either try counts.
                        loser = both[1] if both[0]["passed"] else both[0]
                        again = await self._s8_step(run, loser["kind"], targets[i], len(clients))
                        again["retry"] = True
                        both.append(again)
                    steps += both
                    failed_in_a_row = 0 if any(r["passed"] for r in both) else failed_in_a_row + 1
                    extend = self.cfg["s8_extend"] and len(targets) < 24
                    if i == len(targets) - 1 and failed_in_a_row < 2 and extend:
                        targets.append(round(targets[-1] * 1.1))
                    i += 1
            for c in res.clients:
                c.close()

        def ceiling(kind: str) -> dict | None:
            ok = [s for s in steps if s["kind"] == kind and s["passed"] and not s.get("coarse")]
            return max(ok, key=lambda s: s["deliveries_per_s"]) if ok else None

        def top_common() -> tuple[dict, dict] | tuple[None, None]:
            """The highest step both kinds sustained: CPU per delivery side by side."""
            pairs = {}
            for s in steps:
                if s["sustained"] and not s.get("coarse"):
                    pairs.setdefault(s["target_deliveries_per_s"], {})[s["kind"]] = s
            both = [t for t, p in pairs.items() if len(p) == 2]
            if not both:
                return None, None
            p = pairs[max(both)]
            return p["messages"], p["mixed"]

        plain, mixed = ceiling("messages"), ceiling("mixed")

        def cpu_ratios() -> list[float]:
            """Server CPU per delivery, mixed / messages-only, at each rate both sustained
            (first tries): what a change costs against a message, whatever the latency."""
            by_target: dict[int, dict] = {}
            for s in steps:
                if s["sustained"] and not s.get("coarse") and not s.get("retry"):
                    by_target.setdefault(s["target_deliveries_per_s"], {})[s["kind"]] = s
            return [
                round(p["mixed"]["server_cpu_ms_per_1k"] / p["messages"]["server_cpu_ms_per_1k"], 3)
                for _, p in sorted(by_target.items())
                if len(p) == 2 and p["messages"]["server_cpu_ms_per_1k"]
            ]

        def found(kind: str, best: dict | None) -> bool:
            """A step above the ceiling failed (else it is only the top of the ramp)."""
            return best is not None and any(
                s["kind"] == kind and not s["passed"] and not s.get("coarse")
                and s["target_deliveries_per_s"] > best["target_deliveries_per_s"]
                for s in steps
            )  # fmt: skip

        cp, cm = top_common()
        out = {
            "clients": len(clients),
            "fraction": fraction,
            "pool": len(pool.messages),
            "pool_skipped": pool.skipped,
            "base_deliveries_per_s": base,
            "base_from": base_from,
            "s2_rate": at_s2,
            "messages_ceiling_deliveries_per_s": plain["deliveries_per_s"] if plain else 0,
            "mixed_ceiling_deliveries_per_s": mixed["deliveries_per_s"] if mixed else 0,
            "ceilings_found": found("messages", plain) and found("mixed", mixed),
            "cpu_ms_per_1k_at_common_step": {
                "target_deliveries_per_s": cp["target_deliveries_per_s"] if cp else None,
                "messages": cp["server_cpu_ms_per_1k"] if cp else None,
                "mixed": cm["server_cpu_ms_per_1k"] if cm else None,
            },
            "cpu_ratios": cpu_ratios(),
            "cpu_ratio_median": round(statistics.median(cpu_ratios()), 3) if cpu_ratios() else None,
            "steps": steps,
            "unexplained_versions": sink.unexplained,
            "misattributed_edits": sink.misattributed,
            "loadgen_limited": any(s["loadgen_cpu_pct"] > 90 for s in steps),
        }
        if plain and mixed:
            out["ceiling_ratio"] = round(mixed["deliveries_per_s"] / plain["deliveries_per_s"], 3)
        return out

    async def _s8_step(self, run, kind: str, target: int, clients: int) -> dict:
        rate = target / clients
        seconds = max(self.cfg["s3_step_seconds"], 8 / rate)
        say(f"  {self.name} S8 step {target} deliveries/s, {kind} ({rate:.2f} events/s)")
        r = await run(kind, rate, seconds)
        r["kind"] = kind
        r["target_deliveries_per_s"] = target
        say("    " + brief("s8", r))
        return r

    async def s12(self) -> dict:
        """Typing (issue 11): S2's room of N at the S2 rate, a tenth of the clients sending
        ``{"type": "typing"}`` every 3 s each (staggered, continuously), against the same
        traffic without typing — in one server process, alternating (without, with, with,
        without), so drift favours neither. The figure: message p99 with / without (target
        ≤ 1.5). The sink ignores the typing frames (JSON, no marker)."""
        if self.kind != "t2":
            return None
        if not self.parley.capabilities.get("presence"):
            return {"skipped": NO_PRESENCE}  # (typing came with presence, in issue 11)
        n = self.cfg["clients"]
        seconds = self.cfg["s12_seconds"]
        async with self.fresh_server("s12"):
            self.proto = self.protocol()
            res = await self.connect_room(n)
            clients = [c for c in res.clients if c.open]
            typists = clients[: max(1, int(len(clients) * self.cfg["s12_typist_share"]))]
            await self.quiesce()
            await self.warm_up({0: clients}, self.sink, self.cfg["warmup_seconds"])
            runs: dict[str, list[dict]] = {"without": [], "with": []}
            sent = [0]
            for kind in ("without", "with", "with", "without"):
                typing = None
                if kind == "with":
                    typing = asyncio.ensure_future(
                        self._typing(typists, self.cfg["s12_typing_period"], sent)
                    )
                try:
                    with self.profiling(f"s12-{kind}"):
                        r = await self.measure(
                            {0: clients}, rate=self.cfg["s2_rate"], seconds=seconds
                        )
                finally:
                    if typing is not None:
                        typing.cancel()
                say(f"  {self.name} S12 {kind} typing: " + brief("s2", r))
                runs[kind].append(r)
                await self.quiesce()
            for c in res.clients:
                c.close()

        def merged(rs: list[dict]) -> dict:
            worst = max(rs, key=lambda r: r["p99_ms"] or 0)
            return {
                "p50_ms": max(r["p50_ms"] or 0 for r in rs),
                "p99_ms": worst["p99_ms"],
                "max_ms": max(r["max_ms"] or 0 for r in rs),
                "delivered": sum(r["delivered"] for r in rs),
                "expected": sum(r["expected"] for r in rs),
                "lost": sum(r["lost"] for r in rs),
                "server_cpu_pct": round(sum(r["server_cpu_pct"] for r in rs) / len(rs), 1),
            }

        without, with_ = merged(runs["without"]), merged(runs["with"])
        # The mean p99 of the two runs of each kind (one disturbed run would decide a ratio
        # of worsts); each run's p99 is in "runs".
        ratio = None
        mean_with = [r["p99_ms"] for r in runs["with"] if r["p99_ms"]]
        mean_without = [r["p99_ms"] for r in runs["without"] if r["p99_ms"]]
        if mean_with and mean_without:
            ratio = round(
                (sum(mean_with) / len(mean_with)) / (sum(mean_without) / len(mean_without)), 2
            )
        return {
            "clients": len(clients),
            "typists": len(typists),
            "typing_frames_sent": sent[0],
            "without": without,
            "with": with_,
            "p99_ratio": ratio,
            "runs": runs,
        }

    async def _typing(self, typists, period: float, sent: list) -> None:
        """Each typist sends a typing frame every ``period`` seconds, staggered evenly."""
        frame = json.dumps({"type": "typing"}).encode()
        loop = asyncio.get_running_loop()
        start, k = loop.time(), 0
        while True:
            client = typists[k % len(typists)]
            due = start + k * period / len(typists)
            await asyncio.sleep(max(0.0, due - loop.time()))
            if client.open:
                client.send(frame)
                sent[0] += 1
            k += 1

    async def s10(self) -> dict | None:
        """Sidebars (issue 10): every client is a member of one fresh room; a fifth of them
        view it, the others view other rooms with its unread badge live in their sidebars.
        Messages into it at the S2 rate: the viewers' delivery latency (against this run's
        S2), the watchers' badge latency (send → their ``unread`` frame with that count:
        loadgen.BadgeSink), and the server CPU per message."""
        if self.kind != "t2":
            return None
        if not self.parley.capabilities.get("sidebar"):
            return {"skipped": NO_SIDEBAR}
        n = self.cfg["clients"]
        viewers = max(1, n // 5)
        rooms = self.cfg["s4_rooms"]
        plan = [(i, S10_ROOM) for i in range(viewers)]
        plan += [(i, 1 + i % rooms) for i in range(viewers, n)]
        sink = lg.BadgeSink(self.parley.rooms[S10_ROOM])
        async with self.fresh_server("s10"):
            self.proto = self.protocol()
            res = await lg.connect_many(
                self.proto, plan, sink, concurrency=self.cfg["connect_concurrency"]
            )
            await asyncio.sleep(1.0)
            view = [c for c in res.clients if c.open and c.room == S10_ROOM]
            watch = [c for c in res.clients if c.open and c.room != S10_ROOM]
            sink.watchers = {c.index for c in watch}
            await self.quiesce()
            warm = await self.warm_up({S10_ROOM: view}, sink, min(1, self.cfg["warmup_seconds"]))
            sink.open_window(self._id + 1)
            # The warm-up's messages are the room's first: each badge starts from their count.
            sink.counts = dict.fromkeys(sink.watchers, warm)
            before = self.cpu()
            with self.profiling("s10"):
                sent = await lg.open_loop(
                    self.proto,
                    {S10_ROOM: view},
                    sink,
                    rate=self.cfg["s2_rate"],
                    seconds=self.cfg["s10_seconds"],
                    next_id=self.next_id,
                )
                sink.badges_expected = sent["messages"] * len(watch)
                await lg.drain(sink, timeout=self.cfg["drain_seconds"])
            after = self.cpu()
            room_view = lg.summary(sink)
            badge = sink.badge_summary()
            cpu = self.cpu_report(before, after, room_view["delivered"] + badge["delivered"])
            server_ms = after["server"] - before["server"]
            closed = self.closed(res.clients)
            for c in res.clients:
                c.close()
        s2 = (self.results.get("s2") or {}).get("p99_ms")
        out = {
            "clients": len(view) + len(watch),
            "viewers": len(view),
            "watchers": len(watch),
            "connect_failures": len(plan) - len(view) - len(watch),
            "closed_during_run": closed,
            **sent,
            "room_view": room_view,
            "badge": badge,
            "server_cpu_ms_per_message": round(server_ms / sent["messages"], 2),
            **cpu,
            "s2_p99_ms": s2,
        }
        if s2 and room_view["p99_ms"] is not None:
            out["room_view_p99_over_s2_p99"] = round(room_view["p99_ms"] / s2, 2)
        return out

    async def s16(self) -> dict | None:
        """JSON-frame fan-out (issue 13): two rooms of N connected clients each, in one server
        process — pages (HTML fragments, S2's path: resume + active) and bots
        (``?format=json``, resume only), other users each, so neither room moves the other's
        sidebars. Messages at the S2 rate into one room at a time, in slices interleaved html,
        json, json, html, … (a machine whose load drifts weighs on both alike); then a step
        ramp, both kinds at each step. Per kind: p50/p95/p99 over all its slices,
        delivered/expected (the bots' seqs checked: none repeated, none skipped), server CPU
        per 1k deliveries; and the ratios JSON / HTML."""
        if self.kind != "t2":
            return None
        if not self.parley.capabilities.get("json_frames"):
            return {"skipped": NO_JSON}
        n = self.cfg["clients"]
        if len(self.parley.sessions) < 2 * n:
            raise RuntimeError(f"S16 needs {2 * n} users, the database has fewer")
        sink = lg.JsonSink()
        saved, self.sink = self.sink, sink
        try:
            async with self.fresh_server("s16"):
                self.proto = self.protocol()
                res = await lg.connect_many(
                    self.proto,
                    [(i, S16_HTML_ROOM) for i in range(n)]
                    + [(n + i, S16_JSON_ROOM) for i in range(n)],
                    sink,
                    concurrency=self.cfg["connect_concurrency"],
                )
                await asyncio.sleep(1.0)
                rooms = {
                    kind: [c for c in res.clients if c.open and c.room == key]
                    for kind, key in (("html", S16_HTML_ROOM), ("json", S16_JSON_ROOM))
                }
                sink.json_clients = {c.index for c in rooms["json"]}
                await self.quiesce()
                for kind, key in (("html", S16_HTML_ROOM), ("json", S16_JSON_ROOM)):
                    await self.warm_up({key: rooms[kind]}, sink, self.cfg["warmup_seconds"])
                if sink.html_on_json:  # the tree ignored ?format=json (counted for the run)
                    for c in res.clients:
                        c.close()
                    return {"skipped": NO_JSON, "html_frames_on_json_sockets": sink.html_on_json}
                keys = {"html": S16_HTML_ROOM, "json": S16_JSON_ROOM}

                async def run(kind: str, rate: float, seconds: float) -> dict:
                    await self.quiesce()
                    live = [c for c in rooms[kind] if c.open]
                    r = await self.measure(
                        {keys[kind]: live},
                        rate=rate,
                        seconds=seconds,
                        extra=lambda: {
                            "seq_repeats": sink.seq_repeats,
                            "seq_gaps": sink.seq_gaps,
                            "error_frames": sink.errors,
                            "json_message_frames": sink.json_messages,
                            "latencies": sorted(sink.latencies),  # dropped from the report
                        },
                    )
                    r.update(kind=kind, clients=len(live))
                    ok = r["lost"] == 0 and r["p99_ms"] is not None
                    ok = ok and len(live) == len(rooms[kind]) and not r["duplicates"]
                    ok = ok and not (r["seq_repeats"] or r["seq_gaps"] or r["error_frames"])
                    r["sustained"] = ok and r["p99_ms"] <= SUSTAINED_P99_MS
                    r["passed"] = ok and r["p99_ms"] <= P99_LIMIT_MS
                    return r

                # The server with both rooms connected and nothing sent: what every window
                # pays whatever its kind (the hub's ticks, the sockets' pings), subtracted
                # for the net CPU per delivery.
                await self.quiesce()
                before = self.cpu()
                await asyncio.sleep(self.cfg["s16_idle_seconds"])
                after = self.cpu()
                idle = {
                    "seconds": round((after["wall"] - before["wall"]) / 1000, 1),
                    "server_cpu_pct": round(
                        100
                        * (after["server"] - before["server"])
                        / (after["wall"] - before["wall"]),
                        2,
                    ),
                }
                slices = self.cfg["s16_slices"]
                order = [("html", "json")[(k + 1) // 2 % 2] for k in range(2 * slices)]
                at_s2: list[dict] = []
                with self.profiling("s16"):
                    for kind in order:
                        r = await run(kind, self.cfg["s2_rate"], self.cfg["s16_seconds"] / slices)
                        say(f"  {self.name} S16 at the S2 rate, {kind}: " + brief("s2", r))
                        at_s2.append(r)
                    base = (self.results.get("s3") or {}).get("ceiling_deliveries_per_s")
                    if base:
                        targets = [round(base * f) for f in self.cfg["s16_fractions"]]
                        base_from = "s3"
                    else:
                        targets, base_from = list(self.cfg["s16_steps"]), "s16_steps"
                    steps: list[dict] = []

                    async def pair(i: int, target: int) -> list[dict]:
                        kinds = ("html", "json") if i % 2 == 0 else ("json", "html")
                        both = []
                        for kind in kinds:
                            live = len([c for c in rooms[kind] if c.open])
                            rate = target / max(1, live)
                            seconds = max(self.cfg["s3_step_seconds"], 8 / rate)
                            say(f"  {self.name} S16 step {target} deliveries/s, {kind}")
                            r = await run(kind, rate, seconds)
                            r["target_deliveries_per_s"] = target
                            say("    " + brief("s2", r))
                            both.append(r)
                        steps.extend(both)
                        return both

                    last_ok = stop = None
                    for i, target in enumerate(targets):
                        both = await pair(i, target)
                        if any(r["passed"] for r in both):
                            last_ok = target
                        if not any(r["sustained"] for r in both):
                            stop = target
                            break
                    # As S3: one bisection between the last step either kind passed and the
                    # step that stopped the ramp (the fixed steps are far apart).
                    if self.cfg["s3_refine"] and last_ok and stop and stop - last_ok > 1:
                        await pair(len(targets), (last_ok + stop) // 2)
                closed = self.closed(res.clients)
                for c in res.clients:
                    c.close()
        finally:
            self.sink = saved
        out = s16_report(at_s2, steps, targets, base, base_from, rooms, closed, n, idle)
        out["connect_failures"] = dict(res.failures)
        return out

    def s11_plan(self, n: int) -> tuple[list[tuple[int, int]], dict[int, list[int]]]:
        """S11's sockets (client index, room key): user i is in room i % rooms; those with
        (i // rooms) % 4 == 3 are on a page without a room (/ws/user/). And each one's
        dots: 5-10 other users (a sidebar's DMs), the same in every run."""
        rooms = self.cfg["s11_rooms"]
        plan = [
            (i, lg.USER_SOCKET if (i // rooms) % 4 == 3 else S11_ROOM0 + i % rooms)
            for i in range(n)
        ]
        lo, hi = self.cfg["s11_watch"]
        pks = self.parley.users
        watch = {}
        for i in range(n):
            rng = random.Random(i)  # noqa: S311 - a fixed plan, not security
            others = [j for j in rng.sample(range(n), min(n, hi + 1)) if j != i]
            watch[i] = [pks[j] for j in others[: rng.randint(lo, hi)]]
        return plan, watch

    async def s11(self) -> dict | None:
        """Presence (issue 11): s11_users connected users, each watching 5-10 dots. The same
        sockets measured twice: idle (no frames sent), then sending "activity" frames (each
        client once every s11_activity_period s). The server's CPU and Redis' commands per
        second in each window; their difference is what the activity frames cost (the hub's
        presence renewals and re-reads, every ~10 s, run in both)."""
        if self.kind != "t2":
            return None
        if not self.parley.capabilities.get("presence"):
            return {"skipped": NO_PRESENCE}
        n = min(self.cfg["s11_users"], len(self.parley.sessions), len(self.parley.users))
        plan, watch = self.s11_plan(n)
        sink = lg.PresenceSink()
        seconds, period = self.cfg["s11_seconds"], self.cfg["s11_activity_period"]
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.fresh_server("s11"))
            self.proto = self.protocol()
            res = await lg.connect_many(
                self.proto, plan, sink, concurrency=self.cfg["connect_concurrency"]
            )
            await asyncio.sleep(1.0)  # connected: every user's part written (0.25 s batches)
            clients = [c for c in res.clients if c.open]
            for c in clients:  # the page's dots, as parley.js sends them on open
                c.send(lg.watch_frame(watch[c.index]))
            await asyncio.sleep(1.0)
            await self.quiesce()
            answered = [sink.answers[c.index] for c in clients if c.index in sink.answers]
            states = Counter(s for a in answered for s in a.values())
            live_at_watch = len(sink.live)
            monitor = stack.enter_context(self.redis.monitor(self.prefix))
            # Idle and activity slices, interleaved ABBA (a machine whose load drifts weighs
            # on both alike), s11_seconds of each in all.
            slices = self.cfg["s11_slices"]
            order = [("idle", "presence")[(k + 1) // 2 % 2] for k in range(2 * slices)]
            acc = {kind: Counter() for kind in ("idle", "presence")}
            spy = {kind: Counter() for kind in ("idle", "presence")}
            first = 0
            for n_slice, kind in enumerate(order):
                mark = lg.now_ns()
                commands = self.redis.commands()
                ours = Counter(monitor)
                before = self.cpu()
                with self.profiling(f"s11-{kind}-{n_slice}"):
                    if kind == "idle":
                        await asyncio.sleep(seconds / slices)
                        sent = 0
                    else:
                        sent = await lg.activity_loop(
                            clients, period=period, seconds=seconds / slices, first=first
                        )
                        first += sent
                    after = self.cpu()
                a = acc[kind]
                for key in ("server", "redis", "loadgen", "wall", "machine"):
                    a[key] += after[key] - before[key]
                a["postgres"] += cpu_delta(before["postgres"], after["postgres"])
                a["sent"] += sent
                a["live"] += sink.live_count(mark)
                a["all_commands"] += self.redis.commands() - commands
                for key in ("commands", "presence", "presence_mset"):
                    a[key] += monitor[key] - ours[key]
                if self.profile:
                    path = RESULTS / f"profile-{self.name}-s11-{kind}-{n_slice}.txt"
                    hits, total = profile_share(path, "presence")
                    spy[kind]["hits"] += hits
                    spy[kind]["total"] += total
            windows = {}
            for kind, a in acc.items():
                wall = a["wall"] / 1000
                zero = {"server": 0, "redis": 0, "loadgen": 0, "wall": 0, "machine": 0}
                cpu = self.cpu_report(
                    {**zero, "postgres": {}},
                    {**{k: a[k] for k in zero}, "postgres": {0: a["postgres"]}},
                    0,
                )
                windows[kind] = {
                    "seconds": round(wall, 1),
                    "slices": slices,
                    "activity_frames": a["sent"],
                    "activity_per_s": round(a["sent"] / wall, 1),
                    "live_presence_frames": a["live"],
                    # This server's (MONITOR), and every client's of the shared Redis.
                    "redis_commands_per_s": round(a["commands"] / wall),
                    # Of which on presence entries (the hub's renewals and re-reads: one
                    # MGET, one MSET and an EXPIRE per user per tick, ~10 s).
                    "redis_presence_commands": a["presence"],
                    # The hub's presence writes (MSET) in the window: its ticks, mostly.
                    "presence_writes": a["presence_mset"],
                    "redis_all_commands_per_s": round(a["all_commands"] / wall),
                    "server_cpu_pct": cpu["server_cpu_pct"],
                    "loadgen_cpu_pct": cpu["loadgen_cpu_pct"],
                    "other_cpu_pct": cpu["other_cpu_pct"],
                }
                if self.profile:
                    # py-spy: the share of the server's samples in presence code (presence.py,
                    # presence_* of the hub and the consumers) times the window's server CPU.
                    hits, total = spy[kind]["hits"], spy[kind]["total"]
                    windows[kind]["profile_samples"] = total
                    windows[kind]["profile_presence_share"] = (
                        round(hits / total, 3) if total else None
                    )
                    windows[kind]["profile_presence_cpu_pct"] = (
                        round(windows[kind]["server_cpu_pct"] * hits / total, 2) if total else None
                    )
            closed = self.closed(res.clients)
            for c in res.clients:
                c.close()
        idle, busy = windows["idle"], windows["presence"]
        extra_ms = (busy["server_cpu_pct"] - idle["server_cpu_pct"]) * busy["seconds"] * 10
        frames = busy["activity_frames"]
        per_frame = round(extra_ms / frames, 3) if frames else None
        return {
            "users": n,
            "connected": len(clients),
            "connect_failures": dict(res.failures),
            "room_sockets": sum(1 for c in clients if c.room != lg.USER_SOCKET),
            "user_sockets": sum(1 for c in clients if c.room == lg.USER_SOCKET),
            "rooms": self.cfg["s11_rooms"],
            "watched_per_client": round(statistics.mean(len(w) for w in watch.values()), 1),
            "watch_answers": len(answered),
            "answered_states": dict(states),
            "live_frames_at_watch": live_at_watch,
            "activity_period_s": period,
            "closed_during_run": closed,
            "idle": idle,
            "presence": busy,
            "presence_cpu_pct": round(busy["server_cpu_pct"] - idle["server_cpu_pct"], 1),
            # The difference per activity frame, and what it comes to at the page's own rate
            # (one a minute per user at most: connected / 60 frames/s).
            "server_cpu_ms_per_activity_frame": per_frame,
            "presence_cpu_pct_at_page_rate": (
                round(per_frame * len(clients) / 60 / 10, 2) if per_frame is not None else None
            ),
            "live_frames_received": len(sink.live),
            "presence_frames_received": len(sink.answers) + len(sink.live),
        }

    async def s15(self) -> dict | None:
        """Uploads (issue 12): a ``s15_file_mb`` MB file of random bytes and a 12-megapixel
        JPEG POSTed to the attachment route of the production server (with an API token: no
        CSRF), the server's VmRSS sampled every 5 ms: its growth while the upload is read,
        stored (and, for the photo, re-encoded and thumbnailed). Then the in-process time of
        processing photos of 2-24 megapixels (bench/parley_tool.py thumbs)."""
        if not self.parley.capabilities.get("attachments"):
            return {"skipped": "n/a (the tree predates issue 12)"}
        key = self.parley.tool("token")["token"]
        room = self.parley.rooms[41]
        size = self.cfg["s15_file_mb"] * 1024 * 1024
        photo = await asyncio.to_thread(_s15_photo)
        out: dict = {}
        async with self.fresh_server("s15") as server:
            for label, name, data in (
                (f"file {self.cfg['s15_file_mb']} MB", "random.bin", os.urandom(size)),
                ("jpeg 12 MP", "photo.jpg", photo),
            ):
                await self.quiesce()
                before = rss_kb(server.pid)
                peak = before
                task = asyncio.create_task(
                    asyncio.to_thread(_s15_upload, server.port, room, key, name, data)
                )
                while not task.done():
                    peak = max(peak, rss_kb(server.pid))
                    await asyncio.sleep(0.005)
                status, seconds, body = await task
                await asyncio.sleep(0.5)
                out[label] = {
                    "bytes": len(data),
                    "status": status,
                    "seconds": round(seconds, 2),
                    "rss_before_mb": round(before / 1024, 1),
                    "rss_peak_mb": round(peak / 1024, 1),
                    "rss_growth_mb": round((peak - before) / 1024, 1),
                    "rss_after_mb": round(rss_kb(server.pid) / 1024, 1),
                    "answer": body[:200],
                }
        out["thumbs"] = self.parley.tool(
            "thumbs", "--repeats", str(self.cfg["s15_thumb_repeats"]), pin=True
        )
        return out

    async def s13(self) -> dict | None:
        """Flapping (issue 11): a watcher shows user X's dot; X connects, stays 0.5 s and
        disconnects, once a second for s13_seconds; then s13_tail_seconds more. The presence
        frames about X the watcher gets (the answer to its watch aside)."""
        if self.kind != "t2":
            return None
        if not self.parley.capabilities.get("presence"):
            return {"skipped": NO_PRESENCE}
        watcher_i, x_i = 0, 1
        x = self.parley.users[x_i]
        sink, x_sink = lg.PresenceSink(), lg.Sink()
        seconds, tail = self.cfg["s13_seconds"], self.cfg["s13_tail_seconds"]
        failures: Counter = Counter()
        flaps = 0
        async with self.fresh_server("s13"):
            self.proto = self.protocol()
            res = await lg.connect_many(
                self.proto, [(watcher_i, lg.USER_SOCKET)], sink, concurrency=1
            )
            if not res.clients:
                raise RuntimeError(f"S13: the watcher could not connect: {res.failures}")
            watcher = res.clients[0]
            watcher.send(lg.watch_frame([x]))
            await asyncio.sleep(1.0)
            answer = sink.answers.get(watcher_i)
            start = lg.now_ns()
            for k in range(int(seconds)):
                wait = start + k * 1_000_000_000 - lg.now_ns()
                if wait > 0:
                    await asyncio.sleep(wait / 1e9)
                r = await lg.connect_many(
                    self.proto, [(x_i, lg.USER_SOCKET)], x_sink, concurrency=1
                )
                failures.update(r.failures)
                await asyncio.sleep(0.5)
                for c in r.clients:
                    c.close()
                    flaps += 1
            end = lg.now_ns()
            await asyncio.sleep(tail)
            watcher_open = watcher.open
            watcher.close()
        about_x = [(at, state) for _c, user, state, at in sink.live if user == x and at >= start]
        return {
            "flaps": flaps,
            "flap_seconds": round((end - start) / 1e9, 1),
            "tail_seconds": tail,
            "connect_failures": dict(failures),
            "watch_answer": answer,
            "frames_about_x": len(about_x),
            "frames_while_flapping": sum(1 for at, _ in about_x if at < end),
            "frames_in_tail": sum(1 for at, _ in about_x if at >= end),
            "timeline": [[round((at - start) / 1e9, 2), state] for at, state in about_x],
            "watcher_open_at_end": watcher_open,
        }

    @contextlib.contextmanager
    def profiling(self, scenario: str):
        if not (self.profile and self.kind == "t2"):
            yield
            return
        out = RESULTS / f"profile-{self.name}-{scenario}.txt"
        pyspy = Path(PY).parent / "py-spy"
        proc = subprocess.Popen(  # noqa: S603
            [str(pyspy), "record", "--gil", "--format", "raw", "-r", str(PROFILE_RATE)]
            + ["-o", str(out)]
            + ["--pid", str(self.server.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if out.exists():
                summarise_profile(out)


def profile_share(path: Path, needle: str) -> tuple[int, int]:
    """(samples with ``needle`` in a frame of their stack, all samples) of a py-spy raw
    profile: S11 takes "presence" (presence.py, the hub's and the consumers' presence_*)."""
    hits = total = 0
    if not path.exists():
        return 0, 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        if needle in stack:
            hits += int(count)
    return hits, total


def summarise_profile(path: Path, top: int = 30) -> None:
    """Self and inclusive time per function from py-spy's collapsed stacks."""
    own: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"{total} samples", "", "self time:"]
    lines += [f"{100 * v / total:5.1f}%  {k}" for k, v in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"{100 * v / total:5.1f}%  {k}" for k, v in incl.most_common(top * 2)]
    path.with_suffix(".summary.txt").write_text("\n".join(lines) + "\n")


def s6(parley: Parley, cfg: dict) -> dict:
    """Room page and a history page with 10k and 1M messages (query count, in-process time)."""
    rooms = []
    for count in cfg["s6_sizes"]:
        say(f"S6: inserting {count:,} messages")
        filled = parley.tool("fill", "--count", str(count))
        say(f"S6: {count:,} messages in {filled['seconds']} s")
        rooms.append(filled["room"])
    say("S6: measuring the room page and a history page")
    pages = parley.tool(
        "pages",
        "--session",
        parley.sessions[0],
        "--rooms",
        ",".join(map(str, rooms)),
        "--requests",
        str(cfg["s6_requests"]),
        pin=True,
    )
    return {pages[str(pk)]["messages"]: pages[str(pk)] for pk in rooms}


def _s15_photo() -> bytes:
    """A 12-megapixel JPEG with a photo's entropy and EXIF GPS (S15)."""
    import io

    from PIL import Image

    noise = Image.effect_noise((4000, 3000), 40).convert("L")
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    image = Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))
    exif = Image.Exif()
    exif.get_ifd(0x8825)[2] = (55.0, 45.0, 0.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _s15_upload(port: int, room: int, key: str, name: str, data: bytes):
    """POST ``data`` as the multipart ``file`` field, sent in 64 KiB writes; (status, seconds,
    the answer's first bytes)."""
    import http.client

    boundary = "parley-bench-" + os.urandom(8).hex()
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        view = memoryview(data)
        for start in range(0, len(data), 65536):
            yield bytes(view[start : start + 65536])
        yield tail

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request(
        "POST",
        f"/api/rooms/{room}/attachments/",
        body=body(),
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + len(data) + len(tail)),
            "Host": "127.0.0.1",
        },
    )
    response = conn.getresponse()
    answer = response.read().decode(errors="replace")
    seconds = time.perf_counter() - started
    conn.close()
    return response.status, seconds, answer


# S14's queries: the rare words are in every 1,000th message (0.1 %); the others match none: a
# trigram no message has, trigrams no message has in an order none has, and a phrase of
# trigrams thousands of messages have (the index's candidates are re-checked row by row).
S14_QUERIES = ["qzx", "needle", "zzq", "nomatch", '"message 99999999"', '"needle qzx"', "message"]
S14_TARGETED = ["qzx", "needle", "zzq", "nomatch", '"message 99999999"']


def s14(parley: Parley, cfg: dict) -> dict:
    """Search (issue 12): ``GET /api/search/`` over ``s14_count`` messages in 21 rooms (one
    private, not the searcher's), on PostgreSQL (the trigram index) and on SQLite (a scan),
    in process through Django's test client: p50/p95 per query, queries, first-page size."""
    count = cfg["s14_count"]
    out: dict = {"count": count}
    if not parley.capabilities.get("search"):
        return {"skipped": "n/a (the tree predates issue 12)"}
    queries = json.dumps(S14_QUERIES)
    say(f"S14: {count:,} messages on PostgreSQL")
    filled = parley.tool("searchfill", "--count", str(count))
    say(f"S14: filled in {filled['seconds']} s; searching")
    out["postgresql"] = parley.tool(
        "search", "--session", parley.sessions[0], "--queries", queries,
        "--requests", str(cfg["s14_requests"]), pin=True,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="parley-s14-") as tmp:
        env = {"DATABASE_URL": "", "PARLEY_SQLITE_PATH": str(Path(tmp) / "search.sqlite3")}
        say(f"S14: {count:,} messages on SQLite")
        parley.tool_env(env, "migrate")
        data = parley.tool_env(env, "setup", "--users", "1", "--rooms", "0")
        filled = parley.tool_env(env, "searchfill", "--count", str(count))
        say(f"S14: filled in {filled['seconds']} s; searching")
        out["sqlite"] = parley.tool_env(
            env, "search", "--session", data["sessions"][0], "--queries", queries,
            "--requests", str(cfg["s14_sqlite_requests"]), pin=True,
        )  # fmt: skip
    for db in ("postgresql", "sqlite"):
        say(
            f"S14 {db}: "
            + "; ".join(
                f"{q} p95 {r['p95_ms']} ms ({r['results']} results, {r['queries']} queries)"
                for q, r in out[db].items()
            )
        )
    return out


def s9(parley: Parley, cfg: dict, where: str = "") -> dict:
    """Catch-up after a disconnect (issue 9): the server time of a ``resume`` answered with
    ``s9_messages`` new messages vs one answered with as many messages that were edited or
    reacted to, in-process through the ASGI application (bench/parley_tool.py catchup), on the
    code of ``parley``'s tree (this one, or a --baseline commit that has timeline changes)."""
    size, repeats = cfg["s9_messages"], cfg["s9_repeats"]
    say(f"S9{where}: resume of {size} new vs {size} changed messages, {repeats} times each")
    r = parley.tool("catchup", "--messages", str(size), "--repeats", str(repeats), pin=True)
    say(
        f"S9{where}: new p50 {r['new']['p50_ms']} ms ({r['new']['queries']} queries), changed p50 "
        f"{r['changed']['p50_ms']} ms ({r['changed']['queries']} queries): ratio {r['ratio_p50']}"
    )
    return r


def _percentiles(lat: list[int]) -> dict:
    """p50/p95/p99/max ms of sorted latencies (ns)."""
    n = len(lat)

    def pct(p: float) -> float | None:
        return round(lat[min(n - 1, int(n * p))] / 1e6, 1) if n else None

    return {
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] / 1e6, 1) if n else None,
    }


def _ratio(a, b, digits: int = 3) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def s16_report(at_s2, steps, targets, base, base_from, rooms, closed, n, idle) -> dict:
    """S16's figures: per kind over all its slices at the S2 rate (percentiles of every
    delivery, CPU per 1k over the slices' sum; net: less the idle server's CPU over the same
    time), the JSON / HTML ratios, and the ramp."""
    kinds = {}
    for kind in ("html", "json"):
        runs = [r for r in at_s2 if r["kind"] == kind]
        lat = sorted(x for r in runs for x in r["latencies"])
        delivered = sum(r["delivered"] for r in runs)

        def total(key: str, runs=runs) -> int:
            return sum(r[key] for r in runs)

        def mean(key: str, runs=runs) -> float:
            return round(statistics.mean(r[key] for r in runs), 1)

        kinds[kind] = {
            **_percentiles(lat),
            "expected": total("expected"),
            "delivered": delivered,
            "lost": total("lost"),
            "duplicates": total("duplicates"),
            "seq_repeats": total("seq_repeats"),
            "seq_gaps": total("seq_gaps"),
            "error_frames": total("error_frames"),
            "json_message_frames": total("json_message_frames"),
            "server_cpu_ms_per_1k": per_1k(total("server_cpu_ms"), delivered),
            "net_server_cpu_ms_per_1k": per_1k(
                total("server_cpu_ms") - idle["server_cpu_pct"] / 100 * total("wall_ms"),
                delivered,
            ),
            "server_cpu_pct": mean("server_cpu_pct"),
            "loadgen_cpu_pct": mean("loadgen_cpu_pct"),
            "other_cpu_pct": mean("other_cpu_pct"),
            "slices": len(runs),
            "slice_p99_ms": [r["p99_ms"] for r in runs],
            "slice_server_cpu_ms_per_1k": [r["server_cpu_ms_per_1k"] for r in runs],
        }
    # Each html slice beside its json neighbour (html, json | json, html | …): CPU per
    # delivery json / html per pair, so one disturbed slice shows as an outlier.
    pair_ratios = [
        _ratio(b["server_cpu_ms_per_1k"], a["server_cpu_ms_per_1k"])
        for a, b in (
            sorted(at_s2[i : i + 2], key=lambda r: r["kind"]) for i in range(0, len(at_s2) - 1, 2)
        )
    ]
    pair_ratios = [r for r in pair_ratios if r is not None]
    for r in at_s2 + steps:
        r.pop("latencies", None)
    h, j = kinds["html"], kinds["json"]
    by_target: dict[int, dict] = {}
    for s in steps:
        by_target.setdefault(s["target_deliveries_per_s"], {})[s["kind"]] = s
    step_cpu_ratios = {
        t: _ratio(p["json"]["server_cpu_ms_per_1k"], p["html"]["server_cpu_ms_per_1k"])
        for t, p in sorted(by_target.items())
        if len(p) == 2 and p["json"]["sustained"] and p["html"]["sustained"]
    }

    def ceiling(kind: str) -> tuple[int, bool]:
        ok = [s for s in steps if s["kind"] == kind and s["passed"]]
        best = max(ok, key=lambda s: s["target_deliveries_per_s"]) if ok else None
        found = any(
            s["kind"] == kind and not s["passed"]
            and s["target_deliveries_per_s"] > (best or {}).get("target_deliveries_per_s", 0)
            for s in steps
        )  # fmt: skip
        return (best["deliveries_per_s"] if best else 0), found

    (ch, fh), (cj, fj) = ceiling("html"), ceiling("json")
    return {
        "clients_per_kind": n,
        "html_clients": len(rooms["html"]),
        "json_clients": len(rooms["json"]),
        "closed_during_run": closed,
        "idle": idle,
        "html": h,
        "json": j,
        "ratio_json_over_html": {
            "server_cpu_ms_per_1k": _ratio(j["server_cpu_ms_per_1k"], h["server_cpu_ms_per_1k"]),
            "net_server_cpu_ms_per_1k": _ratio(
                j["net_server_cpu_ms_per_1k"], h["net_server_cpu_ms_per_1k"]
            ),
            "server_cpu_per_1k_slice_pairs": pair_ratios,
            "server_cpu_per_1k_slice_pairs_median": (
                round(statistics.median(pair_ratios), 3) if pair_ratios else None
            ),
            "p50_ms": _ratio(j["p50_ms"], h["p50_ms"], 2),
            "p95_ms": _ratio(j["p95_ms"], h["p95_ms"], 2),
            "p99_ms": _ratio(j["p99_ms"], h["p99_ms"], 2),
        },
        "ramp_from": base_from,
        "ramp_base_deliveries_per_s": base,
        "ramp_targets": targets,
        "html_ceiling_deliveries_per_s": ch,
        "json_ceiling_deliveries_per_s": cj,
        "ceilings_found": fh and fj,
        "step_cpu_ratios": step_cpu_ratios,
        "steps": steps,
        "loadgen_limited": any(s["loadgen_cpu_pct"] > 90 for s in at_s2 + steps),
    }


# --- the report -----------------------------------------------------------------------------


def _ms(*values) -> str:
    return " / ".join("–" if v is None else f"{v:g}" for v in values)


def markdown(results: dict) -> str:
    t = results["targets"]
    meta = results["meta"]
    out = [
        f"Parley benchmark — {meta['date']}, {meta['machine']}, mode `{meta['mode']}`, "
        f"{meta['clients']} clients, {lg.BODY_BYTES}-byte messages. Servers on core 0, "
        "load generator (uvloop + picows, open loop) on core 1; Redis and PostgreSQL unpinned.",
        "",
        "| target | fan-out ceiling (p99 ≤ 250 ms, no loss), deliveries/s | sustained "
        "(no loss, p99 ≤ 1 s), deliveries/s | p50 / p99 at 1k deliveries/s, ms | "
        "server CPU-ms per 1k deliveries (→ one-core estimate/s) | Redis / PG CPU-ms per 1k | "
        "memory per connection (S1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in t.items():
        s3, s1 = r.get("s3"), r.get("s1")
        row = [LABELS[name]]
        if s3:
            top = s3["sustained_step"] or {}
            mark = " ¹" if s3["loadgen_limited"] else ""
            row.append(f"{s3['ceiling_deliveries_per_s']:,}{mark}")
            row.append(f"{s3['sustained_deliveries_per_s']:,}{mark}")
            k = s3["at_1k"] or {}
            row.append(_ms(k.get("p50_ms"), k.get("p99_ms")))
            est = s3["cpu_bound_estimate_per_s"]
            row.append(_ms(top.get("server_cpu_ms_per_1k")) + (f" (→ {est:,})" if est else ""))
            row.append(_ms(top.get("redis_cpu_ms_per_1k"), top.get("postgres_cpu_ms_per_1k")))
        else:
            row += ["–"] * 5
        row.append(f"{s1['kb_per_connection']} KB" if s1 else "–")
        out.append("| " + " | ".join(row) + " |")
    out += [
        "",
        "| target | S1 storm: failures / seconds / ghost members | S2 p50 / p95 / p99 / max ms "
        "(delivered / expected) | S4 rooms p50 / p99 ms (delivered / expected) | "
        "S5 echo p50 / p95 ms | S7 others' p99 ms, server RSS start → max |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in t.items():
        row = [LABELS[name]]
        s1 = r.get("s1")
        row.append(
            f"{s1['failures']} / {s1['seconds']} / {_ms(s1['ghost_members_after_disconnect'])}"
            if s1
            else "–"
        )
        for key in ("s2", "s4"):
            s = r.get(key)
            if s and key == "s2":
                row.append(
                    f"{_ms(s['p50_ms'], s['p95_ms'], s['p99_ms'], s['max_ms'])} "
                    f"({s['delivered']:,} / {s['expected']:,})"
                )
            elif s:
                row.append(
                    f"{_ms(s['p50_ms'], s['p99_ms'])} ({s['delivered']:,} / {s['expected']:,})"
                )
            else:
                row.append("–")
        s5 = r.get("s5")
        row.append(_ms(s5["p50_ms"], s5["p95_ms"]) if s5 else "–")
        s7 = r.get("s7")
        row.append(
            f"{_ms(s7['p99_ms'])} ({s7['delivered']:,} / {s7['expected']:,}), "
            f"{s7['rss_start_kb'] // 1024} → {s7['rss_max_kb'] // 1024} MB"
            if s7
            else "–"
        )
        out.append("| " + " | ".join(row) + " |")
    if results.get("s6"):
        out += [
            "",
            "| S6 messages in the room | room page: queries, p50 / p95 ms | history page "
            "(?before=middle): queries, p50 / p95 ms |",
            "|---|---|---|",
        ]
        for count, page in results["s6"].items():
            rp, hp = page["room_page"], page["history_page"]
            out.append(
                f"| {int(count):,} | {rp['queries']}, {_ms(rp['p50_ms'], rp['p95_ms'])} | "
                f"{hp['queries']}, {_ms(hp['p50_ms'], hp['p95_ms'])} |"
            )
    s14r = results.get("s14") or {}
    if s14r.get("postgresql"):
        out += [
            "",
            f"| S14 search, {s14r['count']:,} messages | PostgreSQL: p50 / p95 ms, queries "
            "(first page) | SQLite: p50 / p95 ms |",
            "|---|---|---|",
        ]
        for q, pg in s14r["postgresql"].items():
            lite = (s14r.get("sqlite") or {}).get(q) or {}
            out.append(
                f"| `{q}` | {_ms(pg['p50_ms'], pg['p95_ms'])}, {pg['queries']} ({pg['results']}) "
                f"| {_ms(lite.get('p50_ms'), lite.get('p95_ms'))} |"
            )
    s15_rows = [(name, r["s15"]) for name, r in t.items() if (r.get("s15") or {}).get("thumbs")]
    for name, s15r in s15_rows:
        out += [
            "",
            f"| S15 uploads ({LABELS[name]}) | status | seconds | server RSS before → peak "
            "(growth) MB |",
            "|---|---|---|---|",
        ]
        for label, u in s15r.items():
            if label == "thumbs":
                continue
            out.append(
                f"| {label} | {u['status']} | {u['seconds']} | {u['rss_before_mb']} → "
                f"{u['rss_peak_mb']} ({u['rss_growth_mb']}) |"
            )
        out += ["", "| S15 processing an image (in process) | bytes | p50 / max ms |"]
        out += ["|---|---|---|"]
        for label, th in s15r["thumbs"].items():
            out.append(f"| {label} | {th['bytes']:,} | {_ms(th['p50_ms'], th['max_ms'])} |")
    s8_rows = [(name, r["s8"]) for name, r in t.items() if r.get("s8")]
    if s8_rows:
        out += [
            "",
            "| S8 timeline changes | ceiling, messages only | ceiling with edits and "
            "reactions | ratio | server CPU-ms per 1k deliveries, messages only / mixed (at "
            "deliveries/s) | CPU per delivery mixed / messages, median over the steps | S2 "
            "rate, messages only: p50 / p99 ms | S2 rate, mixed: p50 / p99 ms (edits, "
            "reactions p99) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in s8_rows:
            if r.get("skipped"):
                out.append(f"| {LABELS[name]} | {r['skipped']} |" + " |" * 6)
                continue
            cpu = r["cpu_ms_per_1k_at_common_step"]
            a, b = r["s2_rate"]["messages"], r["s2_rate"]["mixed"]
            kinds = b["by_kind"]
            out.append(
                f"| {LABELS[name]} | {r['messages_ceiling_deliveries_per_s']:,} | "
                f"{r['mixed_ceiling_deliveries_per_s']:,} | {r.get('ceiling_ratio', '–')}"
                f"{'' if r['ceilings_found'] else ' ²'} | "
                f"{_ms(cpu['messages'], cpu['mixed'])} (at {cpu['target_deliveries_per_s']}) | "
                f"{_ms(r['cpu_ratio_median'])} | "
                f"{_ms(a['p50_ms'], a['p99_ms'])} | {_ms(b['p50_ms'], b['p99_ms'])} "
                f"({_ms((kinds.get('edit') or {}).get('p99_ms'))}, "
                f"{_ms((kinds.get('reaction') or {}).get('p99_ms'))}) |"
            )
    if (results.get("s9") or {}).get("messages"):
        r = results["s9"]
        out += [
            "",
            f"| S9 resume of {r['messages']} messages (in-process, {r['repeats']} each) | "
            "articles in the one frame | queries | p50 / p95 / max ms | frame KB |",
            "|---|---|---|---|---|",
        ]
        for tree, r in (("", results["s9"]), (" (--baseline)", results.get("s9_base"))):
            if not r:
                continue
            if r.get("skipped"):
                out.append(f"| at the --baseline commit | {r['skipped']} | | | |")
                continue
            for key, label in (("new", "new messages"), ("changed", "edited or reacted to")):
                c = r[key]
                out.append(
                    f"| {label}{tree} | {c['articles']} in {c['frames']} frame(s) | "
                    f"{c['queries']} | {_ms(c['p50_ms'], c['p95_ms'], c['max_ms'])} | {c['kb']} |"
                )
            out.append(f"| ratio changed / new (p50){tree} | | | {r['ratio_p50']} | |")
    s10_rows = [(name, r["s10"]) for name, r in t.items() if r.get("s10")]
    if s10_rows:
        out += [
            "",
            "| S10 sidebars: one room, all members | viewers: p50 / p99 ms (delivered / "
            "expected) | this run's S2 p99 ms | ratio | other rooms' viewers: badge p50 / p99 "
            "/ max ms (delivered / expected) | server CPU-ms per message |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in s10_rows:
            if r.get("skipped"):
                out.append(f"| {LABELS[name]} | {r['skipped']} |" + " |" * 4)
                continue
            v, b = r["room_view"], r["badge"]
            out.append(
                f"| {LABELS[name]} ({r['viewers']} + {r['watchers']}) | "
                f"{_ms(v['p50_ms'], v['p99_ms'])} ({v['delivered']:,} / {v['expected']:,}) | "
                f"{_ms(r['s2_p99_ms'])} | {r.get('room_view_p99_over_s2_p99', '–')} | "
                f"{_ms(b['p50_ms'], b['p99_ms'], b['max_ms'])} "
                f"({b['delivered']:,} / {b['expected']:,}) | {r['server_cpu_ms_per_message']} |"
            )
    s12_rows = [(name, r["s12"]) for name, r in t.items() if r.get("s12")]
    if s12_rows:
        out += [
            "",
            "| S12 typing: one room, a tenth typing every 3 s | with typing: p50 / worst p99 / max "
            "ms (delivered / expected) | without: p50 / worst p99 / max ms | p99 ratio (mean of "
            "two runs each) | server CPU % "
            "with / without |",
            "|---|---|---|---|---|",
        ]
        for name, r in s12_rows:
            if r.get("skipped"):
                out.append(f"| {LABELS[name]} | {r['skipped']} |" + " |" * 3)
                continue
            w, wo = r["with"], r["without"]
            out.append(
                f"| {LABELS[name]} ({r['typists']} of {r['clients']}) | "
                f"{_ms(w['p50_ms'], w['p99_ms'], w['max_ms'])} ({w['delivered']:,} / "
                f"{w['expected']:,}) | {_ms(wo['p50_ms'], wo['p99_ms'], wo['max_ms'])} | "
                f"{r['p99_ratio']} | {w['server_cpu_pct']} / {wo['server_cpu_pct']} |"
            )
    s11_rows = [(name, r["s11"]) for name, r in t.items() if r.get("s11")]
    if s11_rows:
        out += [
            "",
            "| S11 presence: connected users (rooms, dots each) | server CPU % idle → with "
            "activity frames (activity frames/s) | server CPU on presence (the difference), % "
            "of a core | Redis "
            "commands/s idle → with activity, this server's | presence frames received "
            "(answers + live) |",
            "|---|---|---|---|---|",
        ]
        for name, r in s11_rows:
            if r.get("skipped"):
                out.append(f"| {LABELS[name]} | {r['skipped']} |" + " |" * 3)
                continue
            i, p = r["idle"], r["presence"]
            spy = ""
            if "profile_presence_cpu_pct" in i:
                spy = (
                    f" (py-spy, in presence code: idle {_ms(i['profile_presence_cpu_pct'])}, "
                    f"with activity {_ms(p['profile_presence_cpu_pct'])})"
                )
            out.append(
                f"| {LABELS[name]}: {r['connected']:,} / {r['users']:,} ({r['rooms']}, "
                f"{r['watched_per_client']}) | {i['server_cpu_pct']} → {p['server_cpu_pct']} "
                f"({p['activity_per_s']}) | {r['presence_cpu_pct']}{spy}; "
                f"{_ms(r.get('server_cpu_ms_per_activity_frame'))} ms per activity frame, "
                f"{_ms(r.get('presence_cpu_pct_at_page_rate'))} % at the page's rate | "
                f"{i['redis_commands_per_s']:,} → {p['redis_commands_per_s']:,} (all clients "
                f"{i['redis_all_commands_per_s']:,} → {p['redis_all_commands_per_s']:,}; hub "
                f"presence writes {i['presence_writes']} → {p['presence_writes']}) | "
                f"{r['presence_frames_received']:,} ({r['watch_answers']:,} + "
                f"{r['live_frames_received']:,}) |"
            )
    s13_rows = [(name, r["s13"]) for name, r in t.items() if r.get("s13")]
    if s13_rows:
        out += [
            "",
            "| S13 flapping: X connects for 0.5 s every second | flaps (seconds) | presence "
            "frames about X at the watcher: while flapping + after | their times (s) |",
            "|---|---|---|---|",
        ]
        for name, r in s13_rows:
            if r.get("skipped"):
                out.append(f"| {LABELS[name]} | {r['skipped']} | | |")
                continue
            times = ", ".join(f"{at:g} {state}" for at, state in r["timeline"]) or "–"
            out.append(
                f"| {LABELS[name]} | {r['flaps']} ({r['flap_seconds']}) | "
                f"{r['frames_about_x']} = {r['frames_while_flapping']} + "
                f"{r['frames_in_tail']} (in {r['tail_seconds']} s) | {times} |"
            )
    s16_rows = [(name, r["s16"]) for name, r in t.items() if r.get("s16")]
    if s16_rows:
        out += [
            "",
            "| S16 JSON frames: two rooms of N, S2's rate, interleaved slices | HTML pages: "
            "p50 / p95 / p99 / max ms (delivered / expected) | JSON bots: p50 / p95 / p99 / max "
            "ms (delivered / expected; seqs repeated, skipped) | server CPU-ms per 1k "
            "deliveries, HTML / JSON (net of the idle server's CPU %) | ratio JSON / HTML: CPU "
            "per delivery (median of the slice pairs; net), p99 | ramp: ceilings HTML / JSON "
            "(CPU ratio at each step both sustained) |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in s16_rows:
            if r.get("skipped"):
                out.append(f"| {LABELS[name]} | {r['skipped']} |" + " |" * 4)
                continue
            h, j, q = r["html"], r["json"], r["ratio_json_over_html"]
            steps = ", ".join(f"{k}: {v:g}" for k, v in r["step_cpu_ratios"].items()) or "–"
            out.append(
                f"| {LABELS[name]} ({r['html_clients']} + {r['json_clients']}) | "
                f"{_ms(h['p50_ms'], h['p95_ms'], h['p99_ms'], h['max_ms'])} "
                f"({h['delivered']:,} / {h['expected']:,}) | "
                f"{_ms(j['p50_ms'], j['p95_ms'], j['p99_ms'], j['max_ms'])} "
                f"({j['delivered']:,} / {j['expected']:,}; {j['seq_repeats']}, "
                f"{j['seq_gaps']}) | {_ms(h['server_cpu_ms_per_1k'], j['server_cpu_ms_per_1k'])} "
                f"(net of {r['idle']['server_cpu_pct']} %: "
                f"{_ms(h['net_server_cpu_ms_per_1k'], j['net_server_cpu_ms_per_1k'])}) "
                f"| {_ms(q['server_cpu_ms_per_1k'])} "
                f"({_ms(q['server_cpu_per_1k_slice_pairs_median'])}; "
                f"{_ms(q['net_server_cpu_ms_per_1k'])}), "
                f"{_ms(q['p99_ms'])} | {r['html_ceiling_deliveries_per_s']:,} / "
                f"{r['json_ceiling_deliveries_per_s']:,}{'' if r['ceilings_found'] else ' ³'} "
                f"({steps}) |"
            )
    if results.get("ratios"):
        out += ["", "Ratios: " + ", ".join(
            f"{k} = {v:g}" for k, v in results["ratios"].items()
        )]  # fmt: skip
    if any(r.get("s3", {}).get("loadgen_limited") for r in t.values()):
        out += ["", "¹ the load generator's core was above 90 % in a step: a lower bound."]
    if any(r.get("s8") and not r["s8"].get("ceilings_found", True) for r in t.values()):
        out += ["", "² S8: a ceiling is the top of the ramp, not found (quick mode stops early)."]
    if any(r.get("s16") and not r["s16"].get("ceilings_found", True) for r in t.values()):
        out += ["", "³ S16: a ceiling is the top of the ramp (or below its first step), not found."]
    if results.get("checks"):
        out += ["", "Targets of issues 4, 9, 10, 11 and 12 (measured, not asserted):", ""]
        out += [f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in results["checks"]]
    return "\n".join(out) + "\n"


def ratios_and_checks(results: dict) -> None:
    t = results["targets"]

    def ceiling(name, key="ceiling_deliveries_per_s"):
        return (t.get(name, {}).get("s3") or {}).get(key)

    ratios = {}
    checks = []
    for name in t:
        if not name.startswith("t2"):
            continue
        r = t[name]
        for key, what in (
            ("ceiling_deliveries_per_s", "ceiling (p99 ≤ 250 ms)"),
            ("sustained_deliveries_per_s", "sustained"),
        ):
            # Against the better of the tutorial's servers.
            t1name = max(
                (n for n in t if n.startswith("t1") and ceiling(n, key) is not None),
                key=lambda n: ceiling(n, key),
                default="t1",
            )
            c2, t0, t1 = ceiling(name, key), ceiling("t0", key), ceiling(t1name, key)
            if c2 is not None and t1:
                ratios[f"{what}: {name}/{t1name}"] = round(c2 / t1, 2)
            if c2 is not None and t0:
                ratios[f"{what}: {name}/t0"] = round(c2 / t0, 3)
            if c2 is not None and t1 is not None:
                checks.append((f"{name}: {what} ≥ 4× T1 ({c2:,} vs {t1:,})", c2 >= 4 * t1 > 0))
            if c2 is not None and t0:
                checks.append((f"{name}: {what} ≥ 0.25× T0 ({c2:,} vs {t0:,})", c2 >= 0.25 * t0))
        if r.get("s2"):
            s2 = r["s2"]
            checks.append(
                (
                    f"{name}: S2 p99 ≤ 50 ms with 0 loss "
                    f"(p99 {s2['p99_ms']} ms, lost {s2['lost']})",
                    s2["p99_ms"] is not None and s2["p99_ms"] <= 50 and s2["lost"] == 0,
                )
            )
        if r.get("s1"):
            s1 = r["s1"]
            checks.append((f"{name}: S1 0 failures ({s1['failures']})", s1["failures"] == 0))
            checks.append(
                (
                    f"{name}: idle memory ≤ 40 KB per connection ({s1['kb_per_connection']} KB)",
                    s1["kb_per_connection"] is not None and s1["kb_per_connection"] <= 40,
                )
            )
            checks.append(
                (
                    f"{name}: no ghost group members after the storm "
                    f"({s1['ghost_members_after_disconnect']})",
                    not s1["ghost_members_after_disconnect"],
                )
            )
        if r.get("s5"):
            p95 = r["s5"]["p95_ms"]
            checks.append((f"{name}: S5 p95 ≤ 20 ms ({p95} ms)", p95 is not None and p95 <= 20))
        if r.get("s8") and not r["s8"].get("skipped"):
            s8r = r["s8"]
            ratio = s8r.get("ceiling_ratio")
            if ratio is not None:
                ratios[f"s8 ceiling with edits and reactions / messages only: {name}"] = ratio
            s3c = (r.get("s3") or {}).get("ceiling_deliveries_per_s")
            if s3c:
                ratios[f"s8 mixed ceiling / s3 ceiling: {name}"] = round(
                    s8r["mixed_ceiling_deliveries_per_s"] / s3c, 3
                )
            checks.append(
                (
                    f"{name}: S8 ceiling with {s8r['fraction']:.0%} edits and reactions ≥ 0.9× "
                    f"messages-only, same server ({s8r['mixed_ceiling_deliveries_per_s']:,} vs "
                    f"{s8r['messages_ceiling_deliveries_per_s']:,})",
                    ratio is not None and ratio >= 0.9,
                )
            )
        s16r = r.get("s16")
        if s16r and not s16r.get("skipped"):
            q = s16r["ratio_json_over_html"]
            for key in ("server_cpu_ms_per_1k", "net_server_cpu_ms_per_1k", "p99_ms"):
                if q.get(key) is not None:
                    ratios[f"s16 JSON / HTML {key}: {name}"] = q[key]
        s10r = r.get("s10")
        if s10r and not s10r.get("skipped"):
            ratio = s10r.get("room_view_p99_over_s2_p99")
            if ratio is not None:
                ratios[f"s10 room-view p99 / s2 p99: {name}"] = ratio
            checks.append(
                (
                    f"{name}: S10 room-view p99 within 1.3× of S2's ({ratio}×), 0 lost "
                    f"({s10r['room_view']['lost']})",
                    ratio is not None and ratio <= 1.3 and s10r["room_view"]["lost"] == 0,
                )
            )
            badge = s10r["badge"]
            checks.append(
                (
                    f"{name}: S10 sidebar badge p99 ≤ 250 ms ({badge['p99_ms']} ms), 0 lost "
                    f"({badge['lost']})",
                    badge["p99_ms"] is not None and badge["p99_ms"] <= 250 and not badge["lost"],
                )
            )
        s11r = r.get("s11")
        if s11r and not s11r.get("skipped"):
            cpu = s11r["presence_cpu_pct"]
            checks.append(
                (
                    f"{name}: S11 server CPU spent on presence ≤ 5 % of one core with "
                    f"{s11r['connected']:,} users ({cpu} %; {s11r['presence']['server_cpu_pct']} "
                    f"% in all with activity frames), Redis "
                    f"{s11r['presence']['redis_commands_per_s']:,} commands/s",
                    cpu <= 5,
                )
            )
        s12r = r.get("s12")
        if s12r and not s12r.get("skipped") and s12r.get("p99_ratio") is not None:
            checks.append(
                (
                    f"{name}: S12 message p99 with {s12r['typists']} typing ≤ 1.5× without "
                    f"({s12r['p99_ratio']}×, mean of two runs each)",
                    s12r["p99_ratio"] <= 1.5,
                )
            )
        s13r = r.get("s13")
        if s13r and not s13r.get("skipped"):
            checks.append(
                (
                    f"{name}: S13 a connection flapping every second for {s13r['flap_seconds']} "
                    f"s → ≤ 20 presence frames at a watcher ({s13r['frames_about_x']})",
                    s13r["frames_about_x"] <= 20,
                )
            )
    s14r = results.get("s14") or {}
    for q in S14_TARGETED if s14r.get("count", 0) >= 1_000_000 else []:
        p95 = s14r["postgresql"][q]["p95_ms"]
        checks.append((f"S14 search `{q}` p95 ≤ 100 ms on PostgreSQL at 1M ({p95} ms)", p95 <= 100))
    for name, r in t.items():
        s15r = r.get("s15") or {}
        for label, u in s15r.items():
            if label.startswith("file ") and u.get("bytes", 0) >= 25 * 1024 * 1024:
                checks.append(
                    (
                        f"{name}: S15 a {label} upload: server RSS growth ≤ 20 MB "
                        f"({u['rss_growth_mb']} MB, status {u['status']})",
                        u["rss_growth_mb"] <= 20 and u["status"] == 201,
                    )
                )
    for count, page in (results.get("s6") or {}).items():
        q = page["room_page"]["queries"]
        # 7 since issue 9: + "may the viewer manage the room", + the page's reactions (one
        # prefetch); 8 since issue 10: + the sidebar (which also gives the viewer's pointer);
        # 9 since issue 11: + the members of a small room, for its read receipts.
        # What matters is that it does not grow with the room (10k vs 1M).
        checks.append((f"room page ≤ 9 queries at {int(count):,} messages ({q})", q <= 9))
        if int(count) >= 1_000_000:
            p95 = page["history_page"]["p95_ms"]
            checks.append((f"history page p95 ≤ 50 ms at {int(count):,} ({p95} ms)", p95 <= 50))
    if (results.get("s9") or {}).get("messages"):
        s9r = results["s9"]
        ratios["s9 resume of changed / new messages (p50)"] = s9r["ratio_p50"]
        checks.append(
            (
                f"S9 resume after {s9r['messages']} edits/reactions ≤ 2× a resume of "
                f"{s9r['messages']} new messages ({s9r['ratio_p50']}×), one frame "
                f"({s9r['changed']['frames']}), {s9r['changed']['queries']} queries "
                f"(new: {s9r['new']['queries']})",
                s9r["ratio_p50"] <= 2 and s9r["changed"]["frames"] == 1,
            )
        )
    base = t.get("t2-base")
    if base and t.get("t2"):
        # The change against its baseline, both measured in this run: >1 means t2 is higher.
        for sc, key in (
            ("s3", "ceiling_deliveries_per_s"),
            ("s3", "sustained_deliveries_per_s"),
            ("s2", "p99_ms"),
            ("s1", "seconds"),
            ("s1", "kb_per_connection"),
            ("s5", "p95_ms"),
        ):
            now, before = (t["t2"].get(sc) or {}).get(key), (base.get(sc) or {}).get(key)
            if now is not None and before:
                ratios[f"{sc} {key}: t2/t2-base"] = round(now / before, 2)
        s16, s16b = t["t2"].get("s16") or {}, base.get("s16") or {}
        for kind in ("html", "json"):
            now, before = (s16.get(kind) or {}), (s16b.get(kind) or {})
            for key in ("p99_ms", "server_cpu_ms_per_1k"):
                if now.get(key) is not None and before.get(key):
                    ratios[f"s16 {kind} {key}: t2/t2-base"] = round(now[key] / before[key], 2)
        s8, s8b = t["t2"].get("s8") or {}, base.get("s8") or {}
        for key in ("messages_ceiling_deliveries_per_s", "mixed_ceiling_deliveries_per_s"):
            if s8.get(key) and s8b.get(key):
                ratios[f"s8 {key}: t2/t2-base"] = round(s8[key] / s8b[key], 2)
    s9r, s9b = results.get("s9") or {}, results.get("s9_base") or {}
    if s9r.get("ratio_p50") and s9b.get("ratio_p50"):
        for key in ("new", "changed"):
            ratios[f"s9 {key} p50_ms: t2/t2-base"] = round(
                s9r[key]["p50_ms"] / s9b[key]["p50_ms"], 2
            )
    results["ratios"] = ratios
    results["checks"] = checks


# --- main ----------------------------------------------------------------------------------------


def baseline_checkout(ref: str) -> str:
    """A detached git worktree of ``ref`` beside the results, served with this venv, with a
    database of its own migrated by its own migrations (``Parley(root=...)``)."""
    path = Path(tempfile.gettempdir()) / f"parley-bench-baseline-{os.getpid()}"
    subprocess.run(  # noqa: S603
        ["git", "worktree", "add", "--detach", "--force", str(path), ref],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    say(f"baseline: {ref} checked out in {path}")
    return str(path)


def membership_plan(cfg: dict, users: int) -> dict[int, list[int]]:
    """Who has joined which room (room key -> user indices): the rooms each scenario's clients
    post in, so no scenario measures the one-time join of a first post; and everyone in the
    S10 room."""
    everyone = list(range(users))
    plan = {0: everyone, 41: [0], S8_ROOM: everyone, S10_ROOM: everyone}
    size = cfg["s4_room_size"]
    for r in range(cfg["s4_rooms"]):
        plan[1 + r] = list(range(r * size, (r + 1) * size))
    return plan


def busy_processes() -> list[str]:
    """Other heavy processes that would disturb the figures (reported, not stopped)."""
    out = subprocess.run(["ps", "-eo", "pid,pcpu,args"], capture_output=True, text=True).stdout  # noqa: S607
    me = {str(os.getpid()), str(os.getppid())}
    busy = []
    for line in out.splitlines()[1:]:
        pid, pcpu, args = line.split(None, 2)
        if pid not in me and float(pcpu) >= 20:
            busy.append(f"{pid} {pcpu}% {args[:80]}")
    return busy


async def main(args) -> dict:
    cfg = dict(QUICK if args.quick else FULL)
    if args.clients:
        cfg["clients"] = args.clients
    if args.s2_rate:
        cfg["s2_rate"] = args.s2_rate
    if args.s2_seconds:
        cfg["s2_seconds"] = args.s2_seconds
    targets = args.targets.split(",") if args.targets else cfg["targets"]
    if args.baseline:
        # The same scenarios against an earlier commit, in this run, on this machine: the
        # change's cost is the ratio t2/t2-base (see ratios_and_checks).
        cfg["baseline_dir"] = baseline_checkout(args.baseline)
        if "t2-base" not in targets:
            targets.append("t2-base")
    elif "t2-base" in targets:
        sys.exit("t2-base needs --baseline REF")
    scenarios = args.scenarios.split(",") if args.scenarios else [*ALL_SCENARIOS, *TOOL_SCENARIOS]
    affinity = sorted(os.sched_getaffinity(0))
    if os.cpu_count() and os.cpu_count() >= 2 and affinity != [1]:
        say(f"note: the load generator runs on cores {affinity}, not pinned to core 1")
    busy = busy_processes()
    if busy:
        say("note: other busy processes, figures may be disturbed: " + "; ".join(busy))
    try:
        rds = Redis()
    except redis.RedisError as exc:
        sys.exit(f"The benchmark needs Redis at {REDIS_URL} (BENCH_REDIS_URL): {exc}")
    try:
        psycopg.connect(f"{PG_URL}/postgres", connect_timeout=5).close()
    except psycopg.Error as exc:
        sys.exit(f"The benchmark needs PostgreSQL at {PG_URL} (BENCH_POSTGRES_URL): {exc}")
    results = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
            f"Linux {platform.release()}, Python {platform.python_version()}",
            "mode": "quick" if args.quick else "full",
            "clients": cfg["clients"],
            "config": cfg,
            "loadgen_affinity": affinity,
            "busy_processes_at_start": busy,
            "client": "picows + uvloop",
        },
        "targets": {},
    }
    parley = parley_base = None
    users = max(cfg["clients"], cfg["s4_rooms"] * cfg["s4_room_size"])
    members = membership_plan(cfg, users)
    rooms = ROOMS
    if "s16" in scenarios:  # the bots are other users than the pages (sidebars)
        members[S16_HTML_ROOM] = list(range(cfg["clients"]))
        members[S16_JSON_ROOM] = list(range(cfg["clients"], 2 * cfg["clients"]))
        users = max(users, 2 * cfg["clients"])
    if "s11" in scenarios:  # S11's users and rooms only when it runs (setup time)
        rooms += cfg["s11_rooms"]
        for i in range(cfg["s11_users"]):
            members.setdefault(S11_ROOM0 + i % cfg["s11_rooms"], []).append(i)
        users = max(users, cfg["s11_users"])
    try:
        if any(t.startswith("t2") for t in targets) or set(TOOL_SCENARIOS) & set(scenarios):
            parley = Parley(users, rooms, members=members)
        if cfg.get("baseline_dir"):
            parley_base = Parley(
                users, rooms, members=members, root=Path(cfg["baseline_dir"]), tag="base"
            )
        for name in targets:
            target = Target(name, cfg, rds, parley_base if name == "t2-base" else parley)
            target.profile = args.profile
            results["targets"][name] = {}
            target.results = results["targets"][name]
            for sc in scenarios:
                if sc in TOOL_SCENARIOS:
                    continue
                by_default = args.targets or name in S8_DEFAULT_TARGETS
                if sc in PARLEY_SCENARIOS and not (name.startswith("t2") and by_default):
                    continue
                say(f"{LABELS[name]}: {sc.upper()}")
                try:
                    r = await getattr(target, sc)()
                except Exception as exc:  # noqa: BLE001 - report and go on with the others
                    say(f"  {sc} failed: {exc!r}")
                    traceback.print_exc()
                    r = None
                    results["targets"][name][f"{sc}_error"] = repr(exc)
                if r is not None:
                    results["targets"][name][sc] = r
                    say("  " + brief(sc, r))
        if "s6" in scenarios and parley is not None:
            results["s6"] = s6(parley, cfg)
        if "s14" in scenarios and parley is not None:
            try:
                results["s14"] = s14(parley, cfg)
            except Exception as exc:  # noqa: BLE001 - report it with the rest of the run
                say(f"  s14 failed: {exc}")
                results["s14_error"] = repr(exc)
        if "s9" in scenarios:
            for key, tree in (("s9", parley), ("s9_base", parley_base)):
                if tree is None:
                    continue
                if not tree.capabilities["changes"]:
                    results[key] = {"skipped": NO_CHANGES}
                    say(f"S9 at the --baseline commit: {NO_CHANGES}")
                    continue
                try:
                    results[key] = s9(tree, cfg, "" if key == "s9" else " at the --baseline commit")
                except Exception as exc:  # noqa: BLE001 - report it with the rest of the run
                    say(f"  {key} failed: {exc}")
                    results[f"{key}_error"] = repr(exc)
    finally:
        rds.clean("bench-tool")  # the tool subprocesses' channel layer (S8 seeds, S9)
        for tree in (parley, parley_base):
            if tree is not None and not args.keep_db:
                tree.drop()
        if cfg.get("baseline_dir"):
            subprocess.run(  # noqa: S603
                ["git", "worktree", "remove", "--force", cfg["baseline_dir"]],  # noqa: S607
                cwd=ROOT,
                check=False,
            )
    if not args.quick:  # quick mode proves the harness works; its figures mean little
        ratios_and_checks(results)
    return results


def brief(sc: str, r: dict) -> str:
    if r.get("skipped"):
        return r["skipped"]
    if sc == "s1":
        return (
            f"connected {r['connected']}/{r['clients']} in {r['seconds']} s, "
            f"{r['kb_per_connection']} KB/conn, ghosts {r['ghost_members_after_disconnect']}, "
            f"failures {r['failure_reasons']}"
        )
    if sc == "s8" and "steps" in r:
        return (
            f"ceilings (p99 ≤ 250 ms): messages-only {r['messages_ceiling_deliveries_per_s']:,}, "
            f"with {r['fraction']:.0%} edits and reactions "
            f"{r['mixed_ceiling_deliveries_per_s']:,} deliveries/s: ratio "
            f"{r.get('ceiling_ratio', '–')}"
            + ("" if r["ceilings_found"] else " (a ceiling is the top of the ramp)")
            + f"; server CPU per delivery mixed/messages, median {r['cpu_ratio_median']}"
        )
    if sc == "s10":
        v, b = r["room_view"], r["badge"]
        return (
            f"{r['viewers']} viewers p50/p99 {_ms(v['p50_ms'], v['p99_ms'])} ms "
            f"({v['delivered']:,}/{v['expected']:,}; S2 p99 {_ms(r['s2_p99_ms'])}), "
            f"{r['watchers']} sidebars' badge p50/p99 {_ms(b['p50_ms'], b['p99_ms'])} ms "
            f"({b['delivered']:,}/{b['expected']:,}), server CPU "
            f"{r['server_cpu_ms_per_message']} ms per message"
        )
    if sc == "s12":
        w, wo = r["with"], r["without"]
        return (
            f"{r['typists']} of {r['clients']} typing ({r['typing_frames_sent']} frames): "
            f"message p50/p99 {_ms(w['p50_ms'], w['p99_ms'])} ms with typing, "
            f"{_ms(wo['p50_ms'], wo['p99_ms'])} ms without: p99 ratio {r['p99_ratio']}; "
            f"lost {w['lost']} / {wo['lost']}; server CPU {w['server_cpu_pct']} / "
            f"{wo['server_cpu_pct']} %"
        )
    if sc == "s11":
        i, p = r["idle"], r["presence"]
        return (
            f"{r['connected']}/{r['users']} users ({r['room_sockets']} room + "
            f"{r['user_sockets']} user sockets, {r['watched_per_client']} dots each, "
            f"{r['watch_answers']} answers {r['answered_states']}): server CPU idle "
            f"{i['server_cpu_pct']} % → {p['server_cpu_pct']} % with {p['activity_per_s']} "
            f"activity frames/s (presence {r['presence_cpu_pct']} %: "
            f"{r['server_cpu_ms_per_activity_frame']} ms per frame, "
            f"{r['presence_cpu_pct_at_page_rate']} % at the page's rate), Redis "
            f"{i['redis_commands_per_s']} → {p['redis_commands_per_s']} commands/s (presence "
            f"writes {i['presence_writes']} / {p['presence_writes']}), live "
            f"presence frames {r['live_frames_at_watch']} at watch, {i['live_presence_frames']} "
            f"idle, {p['live_presence_frames']} with activity; other CPU {i['other_cpu_pct']} / "
            f"{p['other_cpu_pct']} %"
            + (
                f"; py-spy, CPU in presence code: idle {i['profile_presence_cpu_pct']} %, with "
                f"activity {p['profile_presence_cpu_pct']} %"
                if "profile_presence_cpu_pct" in i
                else ""
            )
        )
    if sc == "s15":
        parts = [
            f"{label}: {r[label]['status']} in {r[label]['seconds']} s, RSS +"
            f"{r[label]['rss_growth_mb']} MB"
            for label in r
            if label != "thumbs"
        ]
        parts += [f"{k} {v['p50_ms']} ms" for k, v in r["thumbs"].items()]
        return "; ".join(parts)
    if sc == "s13":
        return (
            f"{r['flaps']} flaps in {r['flap_seconds']} s: {r['frames_about_x']} presence frames "
            f"about X at the watcher ({r['frames_while_flapping']} while flapping, "
            f"{r['frames_in_tail']} in the {r['tail_seconds']} s after): {r['timeline']}; "
            f"answer {r['watch_answer']}, failures {r['connect_failures']}"
        )
    if sc == "s16" and "html" in r:
        h, j, q = r["html"], r["json"], r["ratio_json_over_html"]
        return (
            f"HTML p50/p95/p99 {_ms(h['p50_ms'], h['p95_ms'], h['p99_ms'])} ms "
            f"({h['delivered']:,}/{h['expected']:,}, {h['server_cpu_ms_per_1k']} CPU-ms/1k), "
            f"JSON {_ms(j['p50_ms'], j['p95_ms'], j['p99_ms'])} ms "
            f"({j['delivered']:,}/{j['expected']:,}, {j['server_cpu_ms_per_1k']} CPU-ms/1k; "
            f"duplicates {j['duplicates']}, seqs repeated {j['seq_repeats']}, skipped "
            f"{j['seq_gaps']}): JSON/HTML CPU per delivery {q['server_cpu_ms_per_1k']} "
            f"(slice pairs {q['server_cpu_per_1k_slice_pairs']}; net of the idle server's "
            f"{r['idle']['server_cpu_pct']} %: {q['net_server_cpu_ms_per_1k']}), p99 "
            f"{q['p99_ms']}; ramp "
            f"ceilings {r['html_ceiling_deliveries_per_s']:,} / "
            f"{r['json_ceiling_deliveries_per_s']:,}, step CPU ratios {r['step_cpu_ratios']}"
        )
    if sc == "s3":
        return (
            f"ceiling (p99 ≤ 250 ms) {r['ceiling_deliveries_per_s']:,} deliveries/s, sustained "
            f"{r['sustained_deliveries_per_s']:,}, "
            f"one-core estimate {r['cpu_bound_estimate_per_s']}"
        )
    text = (
        f"p50/p95/p99/max {_ms(r['p50_ms'], r['p95_ms'], r['p99_ms'], r['max_ms'])} ms, "
        f"delivered {r['delivered']:,}/{r['expected']:,}, server CPU {r['server_cpu_pct']} %, "
        f"loadgen CPU {r['loadgen_cpu_pct']} %, other CPU {r['other_cpu_pct']} %"
    )
    if "by_kind" in r:
        kinds = r["by_kind"]
        text += ", by kind p50/p99 " + ", ".join(
            f"{k} {_ms(kinds[k]['p50_ms'], kinds[k]['p99_ms'])}"
            for k in ("message", "edit", "reaction")
            if k in kinds
        )
        text += f", CPU-ms/1k {r['server_cpu_ms_per_1k']}"
        if kinds["stale"] or kinds["error_frames"]:
            text += f", STALE {kinds['stale']} ERRORS {kinds['error_frames']}"
    return text


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about a minute, few clients")
    parser.add_argument("--targets", help="comma-separated: " + ", ".join(LABELS))
    parser.add_argument("--scenarios", help="comma-separated: s1,s2,...,s15,s16")
    parser.add_argument("--clients", type=int, help="clients in the big room (default 500)")
    parser.add_argument("--s2-rate", type=float, help="S2/S7 messages per second (default 10)")
    parser.add_argument("--s2-seconds", type=float, help="S2 duration (default 20)")
    parser.add_argument("--profile", action="store_true", help="py-spy record T2 during S2/S3")
    parser.add_argument("--keep-db", action="store_true", help="do not drop parley_bench_<pid>")
    parser.add_argument("--output", default="latest", help="results/<name>.json and .md")
    parser.add_argument(
        "--baseline", metavar="REF", help="also run T2 at this git commit (target t2-base)"
    )
    args = parser.parse_args()
    results = uvloop.run(main(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results)
    (RESULTS / f"{args.output}.md").write_text(table)
    print()
    print(table)
    say(f"wrote {RESULTS / (args.output + '.json')} and .md")


if __name__ == "__main__":
    cli()
