"""Fuzz-suite fixtures: one real server (uvicorn, as scripts/serve runs it) on a fresh
database, and users A, B and C with personal access tokens.

Run with `pytest -m fuzz` (a pytest process of its own, see scripts/run-tests.sh; `make fuzz`).
The server and database come from faults/harness.py. The server runs with DEBUG off, as in
production, and with every rate limit raised: the fuzzer's calls would otherwise be mostly
429s (still documented answers, but they would exercise nothing). A server that cannot start
fails the suite; it never skips.
"""

import atexit
import json
import os
import secrets
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faults.harness import BASE_DIR, PYTHON, FaultDatabase, Server, free_port
from fuzz import SUMMARY

SERVER_KEY = pytest.StashKey[Server]()
HIGH = "1000000"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed case gets the tail of the server's log in its report."""
    report = yield
    server = item.config.stash.get(SERVER_KEY, None)
    if report.failed and server is not None:
        report.sections.append(("ASGI server log (tail)", server.log_tail(80)))
    return report


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("fuzz summary")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _isolated_counters_and_media():
    """Overrides the root conftest's fixture of the same name: this process never touches a
    database or a cache; only the server does."""
    yield


@dataclass
class User:
    id: int
    username: str
    token: str
    token_id: int = 0
    spare_tokens: list[str] = field(default_factory=list)


@dataclass
class FuzzApi:
    url: str
    workdir: Path
    users: dict[str, User]

    def call(self, method: str, path: str, user: User | None, body=None, files=None):
        """(status, parsed JSON or None) of one request: plain urllib, no client magic."""
        headers = {"Accept": "application/json"}
        if user is not None:
            headers["Authorization"] = f"Bearer {user.token}"
        data = None
        if files is not None:
            boundary = secrets.token_hex(8)
            name, content, content_type = files
            data = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="{name}"\r\nContent-Type: {content_type}\r\n\r\n'
                ).encode()
                + content
                + f"\r\n--{boundary}--\r\n".encode()
            )
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, user: User, body=None, files=None) -> dict:
        status, payload = self.call(method, path, user, body=body, files=files)
        assert 200 <= status < 300, f"{method} {path}: {status} {payload}"
        return payload


def server_env(database: FaultDatabase, workdir: Path) -> dict:
    env = {**os.environ, **database.env()}
    if not env.get("DATABASE_URL"):
        env.pop("DATABASE_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    prefix = f"parley-fuzz-{os.getpid()}"
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            # Production settings (DEBUG off), served over plain HTTP on the loopback.
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_SECURE_COOKIES": "0",
            "DJANGO_HSTS_SECONDS": "0",
            "PARLEY_CHANNEL_PREFIX": prefix,
            "PARLEY_CACHE_PREFIX": prefix,
            "DJANGO_LOG_LEVEL": os.environ.get("PARLEY_FUZZ_LOG_LEVEL", "WARNING"),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_MEDIA_ROOT": str(workdir / "media"),
            "PARLEY_ATTACHMENT_ROOT": str(workdir / "attachments"),
            "PARLEY_API_RATE": f"{HIGH}/min",
            "PARLEY_AUTH_TOKEN_RATE": f"{HIGH}/min",
            # POST /api/auth/token/ with generated passwords: the login limits would lock out.
            "PARLEY_LOGIN_PER_ADDRESS_USERNAME": HIGH,
            "PARLEY_LOGIN_PER_ADDRESS": HIGH,
            "PARLEY_LOGIN_PER_USERNAME": HIGH,
            # The per-user and per-room caps: thousands of generated POSTs as A reach them
            # (20 bots), and the 404 pass then makes A's objects after them.
            "PARLEY_BOTS_PER_USER_MAX": HIGH,
            "PARLEY_TOKENS_PER_USER_MAX": HIGH,
            "PARLEY_WEBHOOKS_PER_ROOM_MAX": HIGH,
            **{
                f"PARLEY_{name}_RATE_COUNT": HIGH
                for name in (
                    "MESSAGE",
                    "REACTION",
                    "ROOM",
                    "READ",
                    "ROOM_ADMIN",
                    "TOKEN_CREATE",
                    "BOT_CREATE",
                    "WEBHOOK",
                    "ATTACHMENT",
                    "SEARCH",
                )
            },
        }
    )
    return env


def _run(args: list[str], env: dict, log: Path, timeout: int = 300) -> str:
    done = subprocess.run(
        args, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    with log.open("a") as out:
        out.write(done.stdout + done.stderr)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return done.stdout


SPARE_TOKENS = 15


@pytest.fixture(scope="session")
def fuzz_api(request, tmp_path_factory) -> FuzzApi:
    workdir = tmp_path_factory.mktemp("fuzz")
    database = FaultDatabase(workdir, suite="fuzz")
    env = server_env(database, workdir)
    server = Server(index=0, port=free_port(), env=env, log_path=workdir / "server.log")
    request.config.stash[SERVER_KEY] = server

    def teardown() -> None:
        server.terminate()
        try:
            database.drop()
        except Exception as exc:  # never mask the real failure
            print(f"could not drop {database.name}: {exc}")

    atexit.register(teardown)  # also on an interrupted run
    try:
        try:
            database.create()
        except Exception as exc:
            pytest.fail(f"Cannot create the fuzz database from DATABASE_URL: {exc}", pytrace=False)
        tool_env = {k: v for k, v in env.items() if k != "REDIS_URL"}
        _run([PYTHON, "manage.py", "migrate", "--noinput"], tool_env, workdir / "migrate.log")
        spec = json.dumps({"prefix": "fuzz", "users": 3, "rooms": 0, "tokens": True})
        made = _run([PYTHON, "-m", "faults.dbtool", "setup", spec], tool_env, workdir / "db.log")
        rows = json.loads(made.strip().splitlines()[-1])["users"]
        server.spawn()
        try:
            server.wait_ready()
        except RuntimeError as exc:
            pytest.fail(f"The fuzz server did not start: {exc}", pytrace=False)
        users = {
            name: User(id=row["id"], username=row["username"], token=row["token"])
            for name, row in zip("ABC", rows, strict=True)
        }
        api = FuzzApi(url=server.http, workdir=workdir, users=users)
        for user in users.values():
            (own,) = api.ok("GET", "/api/tokens/", user)["results"]
            user.token_id = own["id"]
            user.spare_tokens = [
                api.ok("POST", "/api/tokens/", user, body={"name": f"spare {i}"})["token"]
                for i in range(SPARE_TOKENS)
            ]
        yield api
    finally:
        teardown()
        atexit.unregister(teardown)
