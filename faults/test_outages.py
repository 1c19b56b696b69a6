"""Faults during traffic: the Redis behind the channel layer is SIGKILLed and restarted; two of
three server processes die (SIGKILL, SIGTERM). Clients reconnect (to a surviving process),
resume, resend unacknowledged client_ids, and must end with every committed message once, in
order.

Each case prints one line of figures and fails on any violation (see checks.verify)."""

import asyncio
import time

import pytest

from .chatclient import Sender
from .checks import OUTCOME, converge_ms, ms, percentile, pick, record, verify, wait_converged
from .scenario import at, make_clients, prefix, scale, start, stop

pytestmark = pytest.mark.faults

ROOMS, PER_ROOM, SENDERS_PER_ROOM = 3, 6, 2


def _layout(servers, case: str, urls: list[str], spread: int):
    fixtures = servers.setup_fixtures(prefix=prefix(case), users=ROOMS * PER_ROOM, rooms=ROOMS)
    clients = make_clients(fixtures, per_room=PER_ROOM, urls=urls, spread=spread)
    rate = scale(f"{case.upper()}_RATE", 10)  # per sender, messages per second
    duration = scale(f"{case.upper()}_SECONDS", 12)
    senders = [
        Sender(client, count=int(rate * duration), interval=1 / rate, window=50, ack_timeout=8)
        for i, client in enumerate(clients)
        if i % PER_ROOM < SENDERS_PER_ROOM
    ]
    return clients, senders


def _recovery(clients, since: float) -> list[float]:
    """Per client that lost its socket at or after ``since``: seconds until its next open."""
    waits = []
    for client in clients:
        later = [t for t in client.open_times if t > since]
        if later and len(client.open_times) > 1:
            waits.append(later[0] - since)
    return waits


async def test_clients_miss_nothing_when_redis_is_killed_and_restarted_during_traffic(servers):
    """SIGKILL the channel layer's Redis 3 s into the traffic and start it again 1.5 s later
    (same port, empty: every group membership is gone). After reconnects and catch-up no client
    lacks a committed message, and nothing is shown twice or out of order."""
    urls = [servers.servers[0].ws, servers.servers[1].ws]
    clients, senders = _layout(servers, "redis", urls, spread=2)
    redis = servers.redis
    try:
        await start(clients)
        t0 = time.monotonic()
        deadline = t0 + 90
        traffic = asyncio.gather(*(sender.run(deadline) for sender in senders))
        await at(t0, 3)
        killed = time.monotonic()
        redis.kill()
        await at(t0, 4.5)
        await asyncio.to_thread(redis.start)
        restarted = time.monotonic()
        await traffic
        traffic_s = time.monotonic() - t0
        converge = await wait_converged(servers.database, clients, timeout=45)
        figures, violations = verify(servers.database, clients, senders)
        recovered = _recovery(clients, killed)
        summary = {
            **pick(figures, *OUTCOME),
            "redis_down_ms": ms(restarted - killed),
            "clients": len(clients),
            "clients_reconnected": len(recovered),
            "clients_kept_socket": len(clients) - len(recovered),
            "recover_p95_ms_after_kill": ms(percentile(recovered, 95)),
            "recover_max_ms_after_kill": ms(max(recovered, default=0)),
            "reconnect_p95_ms": figures["reconnect_p95_ms"],
            **pick(figures, "connect_failures", "resends", "unacked", "dup_frames"),
            "traffic_seconds": round(traffic_s, 1),
            "converge_ms": converge_ms(converge),
            "close_codes": sorted({code for c in clients for code in c.closes}),
        }
        record("redis", summary, violations, all_figures=figures)
        assert not violations, violations
    finally:
        await stop(clients)
        if not redis.ping():
            await asyncio.to_thread(redis.start)


async def test_clients_miss_nothing_when_two_of_three_server_processes_die_during_traffic(
    servers,
):
    """Clients on servers 0 and 1; 3 s into the traffic server 0 is SIGKILLed and 1 s later
    server 1 gets SIGTERM; server 2 stays. Clients move to server 2, resume and resend: no
    message is lost or duplicated; the reconnect time p95 is reported."""
    urls = [server.ws for server in servers.servers[:3]]
    clients, senders = _layout(servers, "servers", urls, spread=2)
    try:
        await start(clients)
        t0 = time.monotonic()
        deadline = t0 + 90
        traffic = asyncio.gather(*(sender.run(deadline) for sender in senders))
        await at(t0, 3)
        killed = time.monotonic()
        await asyncio.to_thread(servers.servers[0].kill)
        await at(t0, 4)
        await asyncio.to_thread(servers.servers[1].terminate)
        await traffic
        traffic_s = time.monotonic() - t0
        converge = await wait_converged(servers.database, clients, timeout=45)
        figures, violations = verify(servers.database, clients, senders)
        recovered = _recovery(clients, killed)
        summary = {
            **pick(figures, *OUTCOME),
            "clients": len(clients),
            "clients_reconnected": len(recovered),
            "reconnects": figures["reconnects"],
            "reconnect_p95_ms": figures["reconnect_p95_ms"],
            "reconnect_max_ms": figures["reconnect_max_ms"],
            **pick(figures, "connect_failures", "resends", "unacked", "dup_frames"),
            "traffic_seconds": round(traffic_s, 1),
            "converge_ms": converge_ms(converge),
            "close_codes": sorted({code for c in clients for code in c.closes}),
        }
        record("servers", summary, violations, all_figures=figures)
        assert not violations, violations
    finally:
        await stop(clients)
        await asyncio.to_thread(servers.ensure_running)
