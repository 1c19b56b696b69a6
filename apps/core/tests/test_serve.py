"""scripts/serve, the production server (uvicorn), run as a subprocess.

- It refuses to start with DEBUG on or the development secret key unless the operator sets
  PARLEY_ALLOW_INSECURE=1 (item 8c of #8).
- Against the real server: a body past the cap is refused without being read to the end, a
  lying Content-Length gets no 5xx (item 10b), and a foreign Host or invalid bytes leave no
  traceback in the server log (item 6d)."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVE = ROOT / "scripts" / "serve"
STRONG_KEY = "serve-test-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"
CAP = 100_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, port: int, **extra: str) -> dict:
    # Nothing of the caller's configuration: the server gets its own SQLite file, the
    # in-memory channel layer and local cache (DATABASE_URL/REDIS_URL would share real ones).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PARLEY_")) and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        PORT=str(port),
        PARLEY_SQLITE_PATH=str(tmp_path / "serve.sqlite3"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _wait_until_listening(process: subprocess.Popen, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"scripts/serve exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a condition (the port), not waiting a fixed time
    raise AssertionError(f"scripts/serve did not listen on {port} within {timeout} s")


class Server:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = _free_port()
        self.log_path = tmp_path / f"serve-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["bash", str(SERVE)],
            cwd=ROOT,
            env=_env(tmp_path, self.port, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_listening(self.process, self.port)
        except AssertionError:
            self.stop()
            raise AssertionError(self.log()) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # uvicorn (serve execs it): our own pid
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


def _refused(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    port = _free_port()
    done = subprocess.run(
        ["bash", str(SERVE)],
        cwd=ROOT,
        env=_env(tmp_path, port, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stderr
    with pytest.raises(OSError):  # it never listened
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    return done


# --- 8c: refusing insecure settings ----------------------------------------------------------


def test_serve_refuses_to_start_with_debug_on(tmp_path):
    done = _refused(tmp_path, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=STRONG_KEY)
    assert "refusing to start: DEBUG is on" in done.stderr
    assert "PARLEY_ALLOW_INSECURE=1" in done.stderr


def test_serve_refuses_to_start_without_any_settings(tmp_path):
    """No environment at all means DEBUG on and the development key: both are named."""
    done = _refused(tmp_path)
    assert "DEBUG is on" in done.stderr
    assert "the secret key is the development key" in done.stderr


@pytest.mark.parametrize(
    "key", ["django-insecure-parley-development-key-do-not-use-in-production", "short"]
)
def test_serve_refuses_to_start_with_the_development_or_a_weak_key(tmp_path, key):
    done = _refused(tmp_path, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=key)
    assert "the secret key is the development key or too weak" in done.stderr
    assert "DEBUG is on" not in done.stderr


def test_serve_starts_with_debug_when_the_operator_opts_in(tmp_path):
    server = Server(tmp_path, DJANGO_DEBUG="1", PARLEY_ALLOW_INSECURE="1")
    try:
        assert "WARNING (allowed by PARLEY_ALLOW_INSECURE)" in server.log()
    finally:
        server.stop()


# --- the production server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    server = Server(
        tmp_path_factory.mktemp("serve"),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=STRONG_KEY,
        DJANGO_SECURE_SSL_REDIRECT="0",
        PARLEY_HTTP_MAX_BODY=str(CAP),
    )
    yield server
    server.stop()
    assert "Traceback" not in server.log(), server.log()


def _exchange(port: int, head: bytes, body_chunks=(), timeout: float = 10) -> bytes:
    """Send a request head and body chunks (stopping if the server closes), return what the
    server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading and closed: what we want for a flood
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


def test_serve_starts_with_production_settings(production):
    assert "refusing" not in production.log()
    assert "WARNING (allowed" not in production.log()


def test_a_huge_declared_length_is_413_before_any_body_is_sent(production):
    head = (
        b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 1000000000000\r\n\r\n"
    )
    answer = _exchange(production.port, head)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_chunked_flood_is_cut_at_the_cap_with_413(production):
    head = (
        b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"a" * 16384
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    # 50x the cap; the server must answer long before and close without reading it all.
    answer = _exchange(production.port, head, [chunk] * (50 * CAP // len(piece)))
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_lying_small_content_length_gets_no_5xx(production):
    head = (
        b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 10\r\nConnection: close\r\n\r\n"
    )
    # uvicorn frames the body by the declared length: Django sees 10 bytes, the rest is
    # read as a (malformed) next request and answered 400 by uvicorn.
    answer = _exchange(production.port, head, [b"login=abcd" + b"\xff" * (3 * CAP)])
    statuses = [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert statuses
    assert all(not status.startswith(b"HTTP/1.1 5") for status in statuses), statuses


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /accounts/login/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"GET /accounts/login/ HTTP/1.1\r\nHost: \xff\xfe.example\r\n\r\n",
        b"GET /\xff/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /accounts/login/?q=\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /%ff%fe/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid=\xff\r\n\r\n",
    ],
    ids=["foreign host", "host bytes", "path bytes", "query bytes", "cookie bytes"],
)
def test_bad_host_and_bytes_get_4xx_and_no_traceback(production, request_bytes):
    before = len(production.log())
    # Connection: close, or uvicorn keeps the connection open for its keep-alive timeout.
    answer = _exchange(production.port, request_bytes[:-2] + b"Connection: close\r\n\r\n")
    status = answer.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 4"), status
    new = production.log()[before:]
    assert "Traceback" not in new
    assert "ERROR" not in new
