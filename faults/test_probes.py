"""Hardening, checked from outside: the probes of the security review, sent to the real
production servers (three uvicorn processes of scripts/serve sharing Redis and the database) the
way an attacker would send them, with raw sockets and a websocket client. Each probe asserts the
answer; the last case reads every server's log and requires 0 tracebacks and 0 HTTP 5xx.

Revocation is checked across processes: the socket is open on one server and the session ends
through another."""

import asyncio
import http.client
import json
import re
import socket
import time
import urllib.parse

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

pytestmark = pytest.mark.faults

SESSION_COOKIE = "sessionid"
LOG_MARKS: dict[int, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _log_marks(cluster):
    """Where each server's log stood before the first probe: the last case reads from there (the
    outage cases before this module kill Redis and servers, and may log about it)."""
    cluster.ensure_running()
    for server in cluster.servers:
        LOG_MARKS[server.index] = server.log_path.stat().st_size if server.log_path.exists() else 0


def _user(servers, case: str) -> tuple[dict, dict]:
    fixtures = servers.setup_fixtures(
        prefix=f"{case}-{time.monotonic_ns() % 10**8}", users=2, rooms=1
    )
    return fixtures["users"][0], fixtures["rooms"][0]


async def _open(server, room_id: int, session: str, origin: str | None = None):
    return await websockets.connect(
        f"{server.ws}/ws/chat/room/{room_id}/",
        origin=origin or server.http,
        additional_headers={"Cookie": f"{SESSION_COOKIE}={session}"},
        open_timeout=10,
    )


async def _handshake_status(server, path: str, session: str, origin: str) -> int:
    try:
        socket_ = await _open_path(server, path, session, origin)
    except InvalidStatus as exc:
        return exc.response.status_code
    await socket_.close()
    return 101


async def _open_path(server, path: str, session: str, origin: str):
    return await websockets.connect(
        f"{server.ws}{path}",
        origin=origin,
        additional_headers={"Cookie": f"{SESSION_COOKIE}={session}"},
        open_timeout=10,
    )


def _raw_http(server, request: bytes) -> int:
    """Send bytes as they are; the status code of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    assert match, f"no HTTP status line in {head[:200]!r}"
    return int(match[1])


def _logout(server, session: str) -> int:
    """What the nav's "Log out" does: GET a page for the CSRF token, POST the logout form."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/accounts/logout/", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    page = conn.getresponse()
    body = page.read().decode()
    csrf_cookie = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie") or "")[1]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)[1]
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token})
    conn.request(
        "POST",
        "/accounts/logout/",
        body=form,
        headers={
            "Cookie": f"{SESSION_COOKIE}={session}; csrftoken={csrf_cookie}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer.status


async def test_origins_that_differ_in_port_or_scheme_are_refused_at_the_handshake(servers):
    user, room = _user(servers, "origin")
    server, other = servers.servers[0], servers.servers[1]
    path = f"/ws/chat/room/{room['id']}/"
    same = await _handshake_status(server, path, user["session"], server.http)
    other_port = await _handshake_status(server, path, user["session"], other.http)
    other_scheme = await _handshake_status(
        server, path, user["session"], server.http.replace("http://", "https://")
    )
    other_name = await _handshake_status(
        server, path, user["session"], f"http://localhost:{other.port}"
    )
    assert (same, other_port, other_scheme, other_name) == (101, 403, 403, 403)


async def test_an_unknown_websocket_path_is_404_not_500(servers):
    user, _room = _user(servers, "wspath")
    server = servers.servers[0]
    assert await _handshake_status(server, "/ws/nope/", user["session"], server.http) == 404
    assert await _handshake_status(server, "/ws/nope/", "", server.http) == 404


async def test_a_deeply_nested_frame_gets_an_error_and_the_socket_lives(servers):
    user, room = _user(servers, "nested")
    socket_ = await _open(servers.servers[0], room["id"], user["session"])
    try:
        await socket_.send("[" * 100_000 + "]" * 100_000)
        error = await asyncio.wait_for(socket_.recv(), 10)
        assert 'id="composer-error"' in error
        await socket_.send(json.dumps({"type": "message", "body": "still here"}))
        async with asyncio.timeout(10):
            while "still here" not in await socket_.recv():
                pass
    finally:
        await socket_.close()


async def test_a_frame_over_the_servers_byte_cap_is_closed_with_1009(servers):
    user, room = _user(servers, "bigframe")
    socket_ = await _open(servers.servers[0], room["id"], user["session"])
    try:
        with pytest.raises(ConnectionClosed) as closed:
            await socket_.send("x" * 300_000)
            async with asyncio.timeout(10):
                while True:
                    await socket_.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        await socket_.close()


async def test_logout_through_another_process_closes_the_open_socket_within_2_s(servers):
    user, room = _user(servers, "logout")
    socket_ = await _open(servers.servers[0], room["id"], user["session"])
    try:
        await socket_.send(json.dumps({"type": "resume", "after_seq": 0}))
        assert _logout(servers.servers[1], user["session"]) in (200, 302)
        ended = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(2):
                while True:
                    await socket_.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        print(f"logout → 4401 on another process in {1000 * (time.monotonic() - ended):.0f} ms")
    finally:
        await socket_.close()


def test_hostile_http_gets_4xx_answers(servers):
    server = servers.servers[0]
    foreign_host = (
        b"GET /accounts/login/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    )
    bad_utf8 = (
        b"GET /accounts/login/?next=%ff%fe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    huge = (
        b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500000000\r\n\r\n"
        + b"a"
        * 1024
    )
    assert _raw_http(server, foreign_host) == 400
    assert _raw_http(server, bad_utf8) < 500
    assert _raw_http(server, huge) == 413


def test_the_probes_left_no_traceback_and_no_5xx_in_any_server_log(servers):
    """Runs last in this module: everything above was answered without an error logged."""
    for server in servers.servers:
        with server.log_path.open("rb") as f:
            f.seek(LOG_MARKS.get(server.index, 0))
            log = f.read().decode(errors="replace")
        assert "Traceback" not in log, server.log_tail(80)
        assert not re.search(r'" 5\d\d ', log), server.log_tail(80)
