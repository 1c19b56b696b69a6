"""Issue #8 item 2: a websocket Origin must be the page's own scheme, host and port (or a
configured trusted origin); everything else is refused at the handshake (HTTP 403). And item
6c: a handshake to an unknown path is answered 404, not 500, for anyone.

Through the full ``project.asgi.application``; the scope's scheme is what uvicorn sets (``wss``
when the connection, or a trusted proxy's X-Forwarded-Proto, says https)."""

import pytest
from channels.testing import WebsocketCommunicator

from project.asgi import application

from .helpers import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def handshake(
    public_room,
    user,
    *,
    origin: str | None,
    host: str | None = "localhost:8000",
    scheme: str = "ws",
    extra: list[tuple[bytes, bytes]] = (),
    path: str | None = None,
    extensions: dict | None = None,
):
    headers = []
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if user is not None:
        cookie = await session_cookie(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    headers.extend(extra)
    communicator = WebsocketCommunicator(
        application, path or f"/ws/chat/room/{public_room.pk}/", headers=headers
    )
    communicator.scope["scheme"] = scheme  # as the server sets it, before the app runs
    if extensions is not None:
        communicator.scope["extensions"] = extensions
    await communicator.send_input({"type": "websocket.connect"})
    first = await communicator.receive_output(timeout=5)
    return communicator, first


async def assert_accepted(communicator, first) -> None:
    assert first["type"] == "websocket.accept", first
    await communicator.disconnect()


def assert_refused(first) -> None:
    # A close before accept: every server answers it with HTTP 403.
    assert first["type"] == "websocket.close", first


async def test_the_pages_own_origin_is_accepted(public_room, alice):
    await assert_accepted(*await handshake(public_room, alice, origin="http://localhost:8000"))


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:8001",  # another port of the same host
        "http://localhost",  # the default port is another port
        "https://localhost:8000",  # another scheme
        "http://127.0.0.1:8000",  # another name for the same machine is another origin
        "http://evil.example:8000",
        "null",  # sandboxed iframes, file:// pages
        "",
        "ws://localhost:8000",
        "http://localhost:8000/path",
        "http://user@localhost:8000",
        "http://localhost:notaport",
    ],
)
async def test_any_other_origin_is_refused(public_room, alice, origin):
    _, first = await handshake(public_room, alice, origin=origin)
    assert_refused(first)


async def test_localhost_and_127_0_0_1_on_other_ports_are_refused(public_room, alice):
    _, first = await handshake(
        public_room, alice, origin="http://localhost:9999", host="127.0.0.1:8000"
    )
    assert_refused(first)
    _, first = await handshake(
        public_room, alice, origin="http://127.0.0.1:9999", host="127.0.0.1:8000"
    )
    assert_refused(first)
    await assert_accepted(
        *await handshake(public_room, alice, origin="http://127.0.0.1:8000", host="127.0.0.1:8000")
    )


async def test_a_missing_origin_is_refused(public_room, alice):
    _, first = await handshake(public_room, alice, origin=None)
    assert_refused(first)


async def test_two_origin_headers_are_refused(public_room, alice):
    _, first = await handshake(
        public_room,
        alice,
        origin="http://localhost:8000",
        extra=[(b"origin", b"http://evil.example")],
    )
    assert_refused(first)


async def test_a_host_outside_allowed_hosts_is_refused_even_when_origin_matches_it(
    public_room, alice
):
    """DNS rebinding: evil.example resolving to this server makes Origin and Host agree."""
    _, first = await handshake(
        public_room, alice, origin="http://evil.example:8000", host="evil.example:8000"
    )
    assert_refused(first)
    _, first = await handshake(public_room, alice, origin="http://localhost:8000", host=None)
    assert_refused(first)


async def test_default_ports_are_normalised(public_room, alice):
    await assert_accepted(
        *await handshake(public_room, alice, origin="http://localhost:80", host="localhost")
    )
    await assert_accepted(
        *await handshake(
            public_room, alice, origin="https://localhost", host="localhost:443", scheme="wss"
        )
    )


async def test_a_proxied_https_request_accepts_the_https_origin(public_room, alice, settings):
    """Behind nginx uvicorn's --proxy-headers turns X-Forwarded-Proto: https from a trusted
    proxy into the scope's scheme "wss": then the https page's origin is the request's own."""
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    await assert_accepted(
        *await handshake(
            public_room,
            alice,
            origin="https://chat.example.com",
            host="chat.example.com",
            scheme="wss",
        )
    )
    # The http origin is not the https page's.
    _, first = await handshake(
        public_room, alice, origin="http://chat.example.com", host="chat.example.com", scheme="wss"
    )
    assert_refused(first)


async def test_x_forwarded_proto_from_the_client_itself_is_not_trusted(
    public_room, alice, settings
):
    """Where the proxy is not trusted the server leaves the scheme "ws": the header alone does
    not make an https origin acceptable on a plain-http socket."""
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    _, first = await handshake(
        public_room,
        alice,
        origin="https://chat.example.com",
        host="chat.example.com",
        extra=[(b"x-forwarded-proto", b"https")],
    )
    assert_refused(first)


async def test_a_trusted_origin_from_settings_is_accepted_with_its_exact_port(
    public_room, alice, settings
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com:8443", "https://*.example.org"]
    await assert_accepted(
        *await handshake(public_room, alice, origin="https://app.example.com:8443")
    )
    await assert_accepted(*await handshake(public_room, alice, origin="https://eu.example.org"))
    for origin in (
        "https://app.example.com",  # other port
        "http://app.example.com:8443",  # other scheme
        "https://example.org.evil.example",
        "http://eu.example.org",
    ):
        _, first = await handshake(public_room, alice, origin=origin)
        assert_refused(first)


async def test_a_refused_origin_is_a_plain_close_before_accept_on_uvicorn_too(public_room, alice):
    """The server answers it 403 (uvicorn logs that quietly; its HTTP-response extension
    would add an ERROR line per refusal)."""
    communicator, first = await handshake(
        public_room,
        alice,
        origin="http://evil.example",
        extensions={"websocket.http.response": {}},
    )
    assert first == {"type": "websocket.close"}
    await communicator.wait(timeout=5)


# --- 6c: unknown paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/ws/nope/", "/ws/chat/room/abc/", "/ws/chat/room/1/extra/", "/", "/api/rooms/"]
)
@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
async def test_an_unknown_path_is_a_404_for_anyone(public_room, alice, path, logged_in, caplog):
    communicator, first = await handshake(
        public_room,
        alice if logged_in else None,
        origin="http://localhost:8000",
        path=path,
        extensions={"websocket.http.response": {}},
    )
    assert first == {
        "type": "websocket.http.response.start",
        "status": 404,
        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
    }
    body = await communicator.receive_output(timeout=5)
    assert body["type"] == "websocket.http.response.body"
    await communicator.wait(timeout=5)  # the application finished, without an exception
    assert not [r for r in caplog.records if r.exc_info]


async def test_an_unknown_path_costs_no_session_or_user_lookup(public_room, alice, monkeypatch):
    """The 404 comes from the origin check, before the session middleware: a flood of unknown
    paths with a valid cookie never reaches the database."""

    def no_lookup(*args, **kwargs):
        raise AssertionError("the session was looked up for an unknown path")

    monkeypatch.setattr("project.websocket_auth.get_user", no_lookup)
    communicator, first = await handshake(
        public_room,
        alice,
        origin="http://localhost:8000",
        path="/ws/nope/",
        extensions={"websocket.http.response": {}},
    )
    assert first["status"] == 404
    await communicator.receive_output(timeout=5)
    await communicator.wait(timeout=5)


async def test_an_unknown_path_is_refused_before_accept_without_the_extension(public_room):
    """daphne has no HTTP-response extension: a close before accept (its 403), never a 500."""
    communicator, first = await handshake(
        public_room, None, origin="http://localhost:8000", path="/ws/x/"
    )
    assert_refused(first)
    await communicator.wait(timeout=5)


# --- the same through a real uvicorn (the production server) -----------------------------------


@pytest.fixture
def uvicorn_port(tmp_path):
    """uvicorn as scripts/serve runs it (sans-I/O websockets), on a free port. No database is
    touched by what these tests do (no cookie, refused handshakes)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "uvicorn.log", "w+")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "project.asgi:application", "--port", str(port)]
        + ["--ws", "websockets-sansio", "--http", "httptools", "--no-access-log"],
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "PARLEY_SQLITE_PATH": str(tmp_path / "db.sqlite3")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:  # wait until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, log.read()
            time.sleep(0.05)
    yield port
    server.terminate()
    server.wait(timeout=10)
    log.seek(0)
    text = log.read()
    log.close()
    assert "Traceback" not in text and " 500" not in text, text


async def test_uvicorn_answers_404_403_and_accepts_the_own_origin(uvicorn_port):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    base, own = f"ws://127.0.0.1:{uvicorn_port}", f"http://127.0.0.1:{uvicorn_port}"

    async def status(path: str, origin: str | None) -> int:
        try:
            async with connect(base + path, origin=origin, proxy=None, open_timeout=5) as ws:
                await ws.wait_closed()
                return ws.close_code
        except InvalidStatus as exc:
            return exc.response.status_code

    assert await status("/ws/nope/", own) == 404
    assert await status("/ws/chat/room/1/", f"http://127.0.0.1:{uvicorn_port + 1}") == 403
    assert await status("/ws/chat/room/1/", f"http://localhost:{uvicorn_port}") == 403
    assert await status("/ws/chat/room/1/", None) == 403
    assert await status("/ws/chat/room/1/", own) == 4401  # accepted; no session
