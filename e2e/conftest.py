"""End-to-end fixtures: a real ASGI server in a subprocess, driven by the system Chromium.

The server is `manage.py runserver --noreload` (daphne's runserver: ASGI with websockets, and it
serves static files in DEBUG) on a free port, with a database of its own: a fresh PostgreSQL
database when DATABASE_URL is set, otherwise a temporary SQLite file. Tests never touch the
Django test database; they only drive browsers. Run them in their own pytest process
(`pytest -m e2e`): Playwright's sync API keeps an event loop running.
"""

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from playwright.sync_api import BrowserContext, Page

E2E_DIR = Path(__file__).resolve().parent
BASE_DIR = E2E_DIR.parent
ARTIFACTS_DIR = E2E_DIR / "artifacts"
PASSWORD = "e2e-Correct-Horse-77"

# Only the chromium flags this machine needs: no sandbox as root, and no background traffic
# (the network is closed; Chromium otherwise keeps retrying Google's hosts).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SERVER_LOG_KEY = pytest.StashKey[Path]()


# --- Collection -----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the server's log to a failed e2e test's report."""
    report = yield
    log_path = item.config.stash.get(SERVER_LOG_KEY, None)
    if report.failed and log_path is not None and log_path.exists():
        lines = log_path.read_text(errors="replace").splitlines()
        report.sections.append(("ASGI server log (last 150 lines)", "\n".join(lines[-150:])))
    return report


# --- Environment -------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _allow_sync_orm_under_playwright():
    """Playwright's sync API runs an event loop in this thread; Django would refuse sync ORM
    calls next to it. Set only for the e2e tests (an autouse fixture of this directory), so
    that the async-safety check stays on for the rest of the suite."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH")
    if path:
        return path
    for name in ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "No Chromium found for the e2e tests: apt-get install chromium, or set CHROMIUM_PATH.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": chromium_path(),
        "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS],
    }


# --- The server ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PostgresDatabase:
    """A throw-away database next to the one DATABASE_URL names (CI: PostgreSQL)."""

    def __init__(self, url: str):
        import psycopg
        from psycopg import sql

        self._psycopg, self._sql = psycopg, sql
        self.admin_url = url
        self.name = f"parley_e2e_{os.getpid()}"
        self.url = urlunsplit(urlsplit(url)._replace(path=f"/{self.name}"))

    def _execute(self, statement) -> None:
        with self._psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)

    def create(self) -> None:
        name = self._sql.Identifier(self.name)
        self._execute(self._sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        self._execute(self._sql.SQL("CREATE DATABASE {}").format(name))

    def drop(self) -> None:
        name = self._sql.Identifier(self.name)
        self._execute(self._sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


@dataclass
class LiveServer:
    url: str
    log_path: Path
    process: subprocess.Popen
    env: dict

    def django(self, code: str) -> str:
        """Run ``code`` in ``manage.py shell`` against the server's own database (for data a
        test needs in bulk, such as pages of history); returns what it printed."""
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"manage.py shell failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
        return result.stdout


def _wait_until_serving(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"The ASGI server exited with code {process.returncode}:\n{log_path.read_text()}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(
        f"The ASGI server did not answer within 60 s:\n{log_path.read_text()}", pytrace=False
    )


@pytest.fixture(scope="session")
def asgi_server(request, tmp_path_factory) -> LiveServer:
    """A real ASGI server (websockets included) on its own fresh database."""
    workdir = tmp_path_factory.mktemp("e2e-server")
    env = {**os.environ, "DJANGO_DEBUG": "1", "PYTHONUNBUFFERED": "1"}
    env["DJANGO_MEDIA_ROOT"] = str(workdir / "media")
    env["PARLEY_ATTACHMENT_ROOT"] = str(workdir / "attachments")
    # Every test browser signs up from 127.0.0.1: allauth's 20 sign-ups a minute per address
    # would refuse the suite itself.
    env["PARLEY_SIGNUP_RATE"] = "10000/m/ip"
    # A small file limit, so that a test can offer a larger file without megabytes to spare
    # (test_attachments.py reads it from the composer's data-attachment-max-bytes).
    env.setdefault("PARLEY_ATTACHMENT_MAX_BYTES", str(4 * 1024 * 1024))
    env["DJANGO_LOG_LEVEL"] = os.environ.get("PARLEY_E2E_LOG_LEVEL", "INFO")
    # The server must keep Django's async-safety check (the variable is for this process).
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    # Keys of our own in a shared Redis: nothing clashes with other runs or the unit tests.
    prefix = f"parley-e2e-{os.getpid()}"
    env["PARLEY_CHANNEL_PREFIX"] = prefix
    env["PARLEY_CACHE_PREFIX"] = prefix

    database = None
    if os.environ.get("DATABASE_URL"):
        database = _PostgresDatabase(os.environ["DATABASE_URL"])
        database.create()
        env["DATABASE_URL"] = database.url
    else:
        env.pop("DATABASE_URL", None)
        env["PARLEY_SQLITE_PATH"] = str(workdir / "e2e.sqlite3")

    log_path = workdir / "server.log"
    request.config.stash[SERVER_LOG_KEY] = log_path
    python = sys.executable
    with log_path.open("ab") as log:
        migrate = subprocess.run(
            [python, "manage.py", "migrate", "--noinput"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if migrate.returncode != 0:
        if database:
            database.drop()
        pytest.fail(f"manage.py migrate failed:\n{log_path.read_text()}", pytrace=False)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_serving(url, process, log_path)
        yield LiveServer(url=url, log_path=log_path, process=process, env=env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        if database:
            database.drop()
        if request.session.testsfailed:
            # Kept for reading after the run (e2e/artifacts/ is git-ignored).
            ARTIFACTS_DIR.mkdir(exist_ok=True)
            shutil.copyfile(log_path, ARTIFACTS_DIR / "server.log")
            sys.stderr.write(f"\nE2E server log: {ARTIFACTS_DIR / 'server.log'}\n")


@pytest.fixture(scope="session")
def base_url(asgi_server) -> str:
    """pytest-playwright gives every browser context this base URL: page.goto("/")."""
    return asgi_server.url


# --- CSP violations: none allowed on any page of the suite -------------------------------------
# Each page reports its violations from inside (a `securitypolicyviolation` listener installed
# before any page script runs) and Chromium logs each one to the console; either source fails
# the test. The listener calls a Playwright binding, which no page CSP can block.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__parleyCspViolation({
    directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile,
    line: e.lineNumber, sample: e.sample, disposition: e.disposition, url: document.URL,
  });
}, true);
"""


class CspViolations:
    """The CSP violations seen in every browser context of one test."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        context.expose_function("__parleyCspViolation", self._from_page)
        context.add_init_script(_CSP_LISTENER)
        context.on("console", self._from_console)

    def _from_page(self, v: dict) -> None:
        self.seen.append(
            f"securitypolicyviolation on {v['url']}: {v['directive']} blocked {v['blocked']!r}"
            f" at {v['source']}:{v['line']} {v['sample']!r} ({v['disposition']})"
        )

    def _from_console(self, message) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.seen.append(
                f"console {message.type} on {message.page and message.page.url}: {message.text}"
            )

    def take(self) -> list[str]:
        """What was seen so far, forgotten (a test that provokes violations on purpose)."""
        seen, self.seen = self.seen, []
        return seen


@pytest.fixture(autouse=True)
def csp_violations():
    """Autouse: every e2e test fails if any page it opened broke the Content-Security-Policy."""
    recorder = CspViolations()
    yield recorder
    # Contexts are closed by now (new_context depends on this fixture), so every event is in.
    if recorder.seen:
        pytest.fail(
            "Content-Security-Policy violations:\n" + "\n".join(recorder.seen), pytrace=False
        )


@pytest.fixture
def new_context(new_context, csp_violations):
    """pytest-playwright's new_context (and so `context` and `page`), watched for violations."""

    def make(**kwargs) -> BrowserContext:
        context = new_context(**kwargs)
        csp_violations.watch(context)
        return context

    return make


# --- Users and helpers ----------------------------------------------------------------------
_user_counter = itertools.count(1)


@dataclass
class User:
    username: str
    page: Page

    @property
    def context(self) -> BrowserContext:
        return self.page.context


def sign_up(page: Page, username: str, password: str = PASSWORD) -> None:
    """Create an account through the real signup form; allauth logs the new user in."""
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url(lambda url: "/accounts/signup/" not in url)
    # Logged in: the nav now has the user menu.
    page.locator("details[data-dropdown] summary").wait_for()


@pytest.fixture
def new_user(new_context):
    """new_user("alice") → a User signed up through the UI, in a browser context of its own
    (its own cookies: a separate person). Extra keyword arguments go to the context, e.g.
    viewport={...}."""

    def make(stem: str = "user", **context_args) -> User:
        context = new_context(**context_args)
        context.set_default_timeout(15_000)
        page = context.new_page()
        username = f"{stem}{next(_user_counter)}{secrets.token_hex(2)}"
        sign_up(page, username)
        return User(username=username, page=page)

    return make


@pytest.fixture
def save_screenshot():
    """save_screenshot(page, "room-phone") → e2e/artifacts/room-phone.png (full page)."""

    def save(page: Page, name: str) -> Path:
        ARTIFACTS_DIR.mkdir(exist_ok=True)
        path = ARTIFACTS_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
