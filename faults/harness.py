"""The fault suite's infrastructure: a private Redis it may kill, a throw-away database, and
several real ASGI server processes (uvicorn, as scripts/serve runs it) sharing both, each of
which it may kill.

Everything listens on 127.0.0.1 only, and every process is stopped by its own pid. The
machine's Redis (6379) is never touched: the servers get REDIS_URL pointing at the private one.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def strict() -> bool:
    """CI (or PARLEY_FAIL_ON_SKIP): a missing service is a failure, never a skip."""
    return bool(os.environ.get("CI") or os.environ.get("PARLEY_FAIL_ON_SKIP"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen | None, sig: int, timeout: float = 10) -> None:
    """Signal one process we started (by pid) and reap it; SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# --- Redis ------------------------------------------------------------------------------------
class PrivateRedis:
    """A redis-server of our own, on a free port, in the foreground (so its pid is ours)."""

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.workdir),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log_path.read_text()}")
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {timeout} s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, every connection drops, every key (group membership) is gone."""
        _stop(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)


# --- Database -----------------------------------------------------------------------------------
class FaultDatabase:
    """A fresh database for the suite: PostgreSQL next to DATABASE_URL's, or a SQLite file."""

    def __init__(self, workdir: Path, suite: str = "faults"):
        """``suite`` names the database (parley_<suite>_<pid>): suites sharing one PostgreSQL
        (fuzz/ reuses this class) never clash."""
        admin_url = os.environ.get("DATABASE_URL", "")
        self.admin_url = admin_url
        self.is_postgres = bool(admin_url)
        if self.is_postgres:
            self.name = f"parley_{suite}_{os.getpid()}"
            self.url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{self.name}"))
            self.sqlite_path = None
        else:
            self.name = "sqlite"
            self.url = ""
            self.sqlite_path = workdir / f"{suite}.sqlite3"

    @property
    def label(self) -> str:
        return "postgresql" if self.is_postgres else "sqlite"

    def env(self) -> dict:
        """The variables that point a Django process at this database."""
        if self.is_postgres:
            return {"DATABASE_URL": self.url}
        return {"DATABASE_URL": "", "PARLEY_SQLITE_PATH": str(self.sqlite_path)}

    def _admin(self, statement) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def create(self) -> None:
        if not self.is_postgres:
            return
        from psycopg import sql

        name = sql.Identifier(self.name)
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        self._admin(sql.SQL("CREATE DATABASE {}").format(name))

    def drop(self) -> None:
        if not self.is_postgres:
            return
        from psycopg import sql

        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
        )

    def _query(self, query: str, params: list) -> list[tuple]:
        if self.is_postgres:
            import psycopg

            with psycopg.connect(self.url, connect_timeout=10) as conn:
                return conn.execute(query.replace("?", "%s"), params).fetchall()
        conn = sqlite3.connect(self.sqlite_path, timeout=20)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def counts(self, room_ids: list[int]) -> dict[int, tuple[int, int]]:
        """{room_id: (number of messages, highest seq)}: equal when seqs are gap-free."""
        placeholders = ", ".join(["?"] * len(room_ids))
        rows = self._query(
            f"SELECT room_id, COUNT(*), MAX(seq) FROM chat_message "
            f"WHERE room_id IN ({placeholders}) GROUP BY room_id",
            room_ids,
        )
        found = {room_id: (count, top) for room_id, count, top in rows}
        return {room_id: found.get(room_id, (0, 0)) for room_id in room_ids}

    def messages(self, room_ids: list[int]) -> dict[int, list[tuple[int, int, str | None, int]]]:
        """{room_id: [(seq, id, client_id, author_id), …] in seq order}, read directly."""
        rooms: dict[int, list] = {room_id: [] for room_id in room_ids}
        placeholders = ", ".join(["?"] * len(room_ids))
        rows = self._query(
            "SELECT room_id, seq, id, client_id, author_id FROM chat_message "
            f"WHERE room_id IN ({placeholders}) ORDER BY room_id, seq",
            room_ids,
        )
        for room_id, seq, pk, client_id, author_id in rows:
            cid = str(client_id).replace("-", "") if client_id else None
            rooms[room_id].append((seq, pk, cid, author_id))
        return rooms

    def timeline(self, room_id: int) -> dict[int, dict]:
        """The room's messages as they are now: {id: {"seq", "version", "deleted", "html",
        "reply_to", "reactions": {emoji: [user ids in the order they reacted]}}}."""
        rows = self._query(
            "SELECT id, seq, version, deleted_at IS NOT NULL, html, reply_to_id "
            "FROM chat_message WHERE room_id = ? ORDER BY seq",
            [room_id],
        )
        state = {
            pk: {
                "seq": seq,
                "version": version,
                "deleted": bool(deleted),
                "html": html,
                "reply_to": reply_to,
                "reactions": {},
            }
            for pk, seq, version, deleted, html, reply_to in rows
        }
        reactions = self._query(
            "SELECT r.message_id, r.emoji, r.user_id FROM chat_reaction r "
            "JOIN chat_message m ON m.id = r.message_id WHERE m.room_id = ? "
            "ORDER BY r.created_at, r.id",
            [room_id],
        )
        for message_id, emoji, user_id in reactions:
            state[message_id]["reactions"].setdefault(emoji, []).append(user_id)
        return state


# --- ASGI servers ---------------------------------------------------------------------------------
LOSSY_LAYER = "faults.lossy_layer.LossyChannelLayer"


@dataclass
class Server:
    index: int
    port: int
    env: dict
    log_path: Path
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        # The production server (scripts/serve: uvicorn), with this venv's binaries.
        args = ["bash", "scripts/serve", "--log-level", "warning"]
        env = {**self.env, "PORT": str(self.port), "VENV": str(Path(PYTHON).parent.parent)}
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start #{self.starts + 1} at {time.time():.3f} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server {self.index} exited with {self.process.returncode}:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(f"{self.http}/accounts/login/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server {self.index} did not answer in {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def terminate(self) -> None:
        _stop(self.process, signal.SIGTERM)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Cluster:
    """The servers of the suite, sharing the private Redis and the fault database."""

    redis: PrivateRedis
    database: FaultDatabase
    workdir: Path
    servers: list[Server] = field(default_factory=list)

    @property
    def channel_layer(self) -> str:
        """PARLEY_CHANNEL_LAYER of the servers (the suite passes the caller's through)."""
        return os.environ.get("PARLEY_CHANNEL_LAYER") or "core"

    def server_env(self) -> dict:
        env = {**os.environ, **self.database.env()}
        if not env.get("DATABASE_URL"):
            env.pop("DATABASE_URL", None)
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "project.settings",
                "REDIS_URL": self.redis.url,
                "DJANGO_DEBUG": "1",
                # scripts/serve refuses DEBUG and the development key without this opt-in.
                "PARLEY_ALLOW_INSECURE": "1",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                # The load would otherwise be rate limited (30 messages per 10 s per user).
                "PARLEY_MESSAGE_RATE_COUNT": "1000000",
                "PARLEY_REACTION_RATE_COUNT": "1000000",
                "PARLEY_ROOM_RATE_COUNT": "1000000",
                "PARLEY_CHANNEL_PREFIX": f"parley-faults-{os.getpid()}",
                "PARLEY_CACHE_PREFIX": f"parley-faults-{os.getpid()}",
                "DJANGO_LOG_LEVEL": os.environ.get("PARLEY_FAULTS_LOG_LEVEL", "WARNING"),
                "PYTHONUNBUFFERED": "1",
                "DJANGO_MEDIA_ROOT": str(self.workdir / "media"),
                "PARLEY_ATTACHMENT_ROOT": str(self.workdir / "attachments"),
            }
        )
        return env

    def migrate(self) -> None:
        log = self.workdir / "migrate.log"
        with log.open("ab") as out:
            done = subprocess.run(
                [PYTHON, "manage.py", "migrate", "--noinput"],
                cwd=BASE_DIR,
                env=self.tool_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py migrate failed:\n{log.read_text()}")

    def tool_env(self) -> dict:
        """Django in a helper subprocess: the fault database, no Redis at all."""
        env = self.server_env()
        env.pop("REDIS_URL", None)
        return env

    def add_servers(self, count: int, **env) -> list[Server]:
        added = []
        for _ in range(count):
            index = len(self.servers)
            server = Server(
                index=index,
                port=free_port(),
                env={**self.server_env(), **env},
                log_path=self.workdir / f"server-{index}.log",
            )
            self.servers.append(server)
            added.append(server)
        return added

    def lossy_server(self) -> Server:
        """A server whose channel layer loses every third message it receives
        (faults/lossy_layer.py), so its sockets only stay complete through the gap fill."""
        for server in self.servers:
            if server.env.get("PARLEY_CHANNEL_BACKEND") == LOSSY_LAYER:
                break
        else:
            (server,) = self.add_servers(1, PARLEY_CHANNEL_BACKEND=LOSSY_LAYER)
        self.ensure_running()
        return server

    def ensure_running(self) -> None:
        """(Re)start every server that is not running, on its own port, and wait for all."""
        started = [server for server in self.servers if not server.alive]
        for server in started:
            server.spawn()
        for server in started:
            server.wait_ready()

    def stop_all(self) -> None:
        for server in self.servers:
            server.terminate()

    def setup_fixtures(self, *, prefix: str, users: int, rooms: int, tokens: bool = False) -> dict:
        """Users (with sessions, and API tokens if asked) and public rooms, made by
        faults/dbtool.py in a subprocess. The first user creates (owns) the rooms."""
        spec = json.dumps({"prefix": prefix, "users": users, "rooms": rooms, "tokens": tokens})
        done = subprocess.run(
            [PYTHON, "-m", "faults.dbtool", "setup", spec],
            cwd=BASE_DIR,
            env=self.tool_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"faults.dbtool setup failed:\n{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for server in self.servers:
            parts.append(f"--- server {server.index} ({server.log_path}) ---\n")
            parts.append(server.log_tail(lines))
        return "\n".join(parts)


def find_redis_server() -> str | None:
    """REDIS_SERVER if set (and executable), else redis-server on PATH."""
    path = os.environ.get("REDIS_SERVER")
    if path:
        return path if os.access(path, os.X_OK) else None
    return shutil.which("redis-server")
