"""Delivery guarantees with every process healthy: idempotent sends, concurrent writers, a
sustained load over two server processes, and a reader that stops reading.

Each case prints one line of figures and fails on any violation (see checks.verify)."""

import asyncio
import time
import uuid

import pytest

from .chatclient import Sender
from .checks import OUTCOME, converge_ms, ms, pick, record, verify, wait_converged
from .lossy_layer import DROP_MARK
from .scenario import make_clients, prefix, scale, start, stop

pytestmark = pytest.mark.faults


async def test_the_same_client_id_sent_three_times_is_stored_once_and_acknowledged_three_times(
    servers,
):
    """One socket sends one client_id three times in a row: one row, three acknowledgements
    naming that message (its article, then — the socket has it — ``#message-ack``). Then three
    sockets of the same user on two processes send another client_id at the same moment:
    still one row, and every socket is acknowledged with it."""
    fixtures = servers.setup_fixtures(prefix=prefix("idem"), users=1, rooms=1)
    user, room = fixtures["users"][0], fixtures["rooms"][0]
    fixtures = {"users": [user] * 3, "rooms": [room]}
    urls = [servers.servers[0].ws, servers.servers[1].ws]
    clients = make_clients(fixtures, per_room=3, urls=urls)
    seen: dict[int, list[tuple[str, int]]] = {i: [] for i in range(3)}
    for i, client in enumerate(clients):
        client.on_article.append(
            lambda cid, pk, seq, t, i=i: seen[i].append((cid, pk)) if cid else None
        )
        client.on_ack.append(lambda cid, pk, t, i=i: seen[i].append((cid, pk)))
    try:
        await start(clients)
        first = str(uuid.uuid4())
        for _ in range(3):
            frame = {"type": "message", "body": "once", "client_id": first}
            assert await clients[0].send_json(frame)
        second = str(uuid.uuid4())
        await asyncio.gather(
            *(
                client.send_json({"type": "message", "body": "raced", "client_id": second})
                for client in clients
            )
        )
        first_hex, second_hex = first.replace("-", ""), second.replace("-", "")

        def acks(i: int, cid: str) -> list[int]:
            return [pk for c, pk in seen[i] if c == cid]

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if len(acks(0, first_hex)) >= 3 and all(acks(i, second_hex) for i in range(3)):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # anything extra would arrive now
        rows = servers.database.messages([room["id"]])[room["id"]]
        first_rows = [r for r in rows if r[2] == first_hex]
        second_rows = [r for r in rows if r[2] == second_hex]
        first_acks = acks(0, first_hex)
        raced_acks = [acks(i, second_hex) for i in range(3)]
        figures = {
            "sends": 3,
            "rows": len(first_rows),
            "acks": len(first_acks),
            "identical_acks": len(set(first_acks)) == 1,
            "raced_sockets": 3,
            "raced_rows": len(second_rows),
            "raced_sockets_acked": sum(1 for a in raced_acks if a),
            "raced_ack_frames": sum(len(a) for a in raced_acks),
            "raced_identical": len({ack for a in raced_acks for ack in a}) == 1,
        }
        violations = []
        if len(first_rows) != 1:
            violations.append(f"client_id sent 3 times stored {len(first_rows)} times")
        if len(first_acks) != 3 or len(set(first_acks)) != 1:
            violations.append(f"expected 3 identical acknowledgements, got {first_acks}")
        if len(second_rows) != 1:
            violations.append(f"raced client_id stored {len(second_rows)} times")
        if not all(raced_acks) or len({ack for a in raced_acks for ack in a}) != 1:
            violations.append(f"raced acknowledgements per socket: {raced_acks}")
        errors = [e for client in clients for e in client.errors]
        if errors:
            violations.append(f"error frames: {errors[:3]}")
        record("idempotency", figures, violations)
        assert not violations, violations
    finally:
        await stop(clients)


async def test_fifty_concurrent_writers_get_strictly_increasing_gap_free_seqs(servers):
    """50 sockets (50 users, two processes) each send 10 messages at the same moment to one
    room: 500 rows with seqs 1..500, every send acknowledged, every member holds all 500 in
    order."""
    writers, each = int(scale("WRITERS", 50)), int(scale("WRITES_EACH", 10))
    fixtures = servers.setup_fixtures(prefix=prefix("writers"), users=writers, rooms=1)
    urls = [servers.servers[0].ws, servers.servers[1].ws]
    clients = make_clients(fixtures, per_room=writers, urls=urls)
    senders = [
        Sender(client, count=each, interval=0, window=each, ack_timeout=30) for client in clients
    ]
    try:
        await start(clients)
        started = time.monotonic()
        deadline = started + 60
        await asyncio.gather(*(sender.run(deadline) for sender in senders))
        elapsed = time.monotonic() - started
        converge = await wait_converged(servers.database, clients, timeout=30)
        figures, violations = verify(servers.database, clients, senders)
        figures = {
            "writers": writers,
            **pick(figures, "sent", "stored", "db_gaps", "lost", "duplicated", "reordered"),
            **pick(figures, "unacked", "resends", "dup_frames", "p95_ack_ms", "p95_latency_ms"),
            "writes_per_s": round(figures["stored"] / elapsed, 1),
            "converge_ms": converge_ms(converge),
        }
        if figures["stored"] != writers * each:
            violations.append(f"stored {figures['stored']} rows, expected {writers * each}")
        record("concurrent_writers", figures, violations)
        assert not violations, violations
    finally:
        await stop(clients)


@pytest.mark.timeout(360)
async def test_fifty_clients_in_five_rooms_on_two_processes_receive_every_message_once_in_order(
    servers,
):
    """The load: 50 clients in 5 rooms over 2 processes, 3 senders per room, 5,000 messages in
    total paced at about 100 per second. Every member of a room ends with exactly its room's
    messages, in seq order: lost 0, duplicated 0, reordered 0."""
    rooms, per_room, senders_per_room = 5, 10, 3
    total = int(scale("LOAD_MESSAGES", 5000))
    # Messages per second, all rooms together. Each sender keeps at most WINDOW unacknowledged,
    # so a slower machine runs the load more slowly instead of piling up a backlog.
    rate = scale("LOAD_RATE", 60)
    fixtures = servers.setup_fixtures(prefix=prefix("load"), users=rooms * per_room, rooms=rooms)
    urls = [servers.servers[0].ws, servers.servers[1].ws]
    clients = make_clients(fixtures, per_room=per_room, urls=urls)
    sending = [c for i, c in enumerate(clients) if i % per_room < senders_per_room]
    per_sender = total // len(sending)
    senders = [
        Sender(
            client,
            count=per_sender + (1 if i < total % len(sending) else 0),
            interval=len(sending) / rate,
            window=int(scale("LOAD_WINDOW", 4)),
            ack_timeout=10,
        )
        for i, client in enumerate(sending)
    ]
    try:
        await start(clients)
        started = time.monotonic()
        deadline = started + 300
        await asyncio.gather(*(sender.run(deadline) for sender in senders))
        elapsed = time.monotonic() - started
        converge = await wait_converged(servers.database, clients, timeout=30)
        figures, violations = verify(servers.database, clients, senders)
        summary = {
            **pick(figures, "sent", "delivered"),
            "expected": figures["expected_deliveries"],
            **pick(figures, "lost", "duplicated", "reordered"),
            **pick(figures, "p50_latency_ms", "p95_latency_ms", "max_latency_ms", "p95_ack_ms"),
            "msgs_per_s": round(figures["stored"] / elapsed, 1),
            "seconds": round(elapsed, 1),
            "clients": len(clients),
            "rooms": rooms,
            "servers": 2,
            **pick(figures, "resends", "dup_frames", "reconnects", "reloads", "unacked"),
            "converge_ms": converge_ms(converge),
        }
        if figures["sent"] < total:
            violations.append(f"only {figures['sent']} of {total} messages were sent")
        record("load", summary, violations, all_figures=figures)
        assert not violations, violations
    finally:
        await stop(clients)


async def test_a_reader_that_stops_reading_ends_with_all_five_hundred_messages_in_order(servers):
    """A client stops reading (4 frames buffered, a 4 KB socket buffer, then TCP backpressure
    on the server) while 500
    messages of about 1.5 KB arrive, then reads again: it ends with all 500, in order, whether
    the server kept its frames, dropped it, or the channel layer dropped some of them."""
    count = int(scale("SLOW_MESSAGES", 500))
    fixtures = servers.setup_fixtures(prefix=prefix("slow"), users=3, rooms=1)
    urls = [servers.servers[0].ws, servers.servers[1].ws]
    clients = make_clients(fixtures, per_room=3, urls=urls)
    writer, reader, slow = clients
    slow.max_queue = 4
    slow.rcvbuf = 4096
    slow.start = 1
    sender = Sender(writer, count=count, interval=0.004, window=50, ack_timeout=15, body_size=1500)
    try:
        await start(clients)
        slow.reading.clear()
        started = time.monotonic()
        await sender.run(started + 90)
        sent_s = time.monotonic() - started
        await asyncio.sleep(2)
        frames_while_paused, closes_while_paused = slow.frames, list(slow.closes)
        resumed = time.monotonic()
        slow.reading.set()
        converge = await wait_converged(servers.database, clients, timeout=45)
        caught_up_s = time.monotonic() - resumed
        figures, violations = verify(servers.database, clients, [sender])
        summary = {
            "sent": figures["sent"],
            "held": len(slow.held),
            "lost": len({pk for _, pk, _, _ in _rows(servers, slow)} - set(slow.held)),
            "duplicated": figures["duplicated"],
            "reordered": slow.reordered,
            "frames_while_paused": frames_while_paused,
            "closed_while_paused": closes_while_paused,
            "reconnects": len(slow.reconnect_s),
            "dup_frames": slow.dup_frames,
            "reloads": slow.reloads,
            "send_seconds": round(sent_s, 1),
            "catch_up_ms": ms(caught_up_s) if converge is not None else "timeout",
            "fast_reader_lost": len(
                {pk for _, pk, _, _ in _rows(servers, reader)} - set(reader.held)
            ),
        }
        record("slow_reader", summary, violations, all_figures=figures)
        assert not violations, violations
    finally:
        await stop(clients)


def _rows(servers, client):
    return servers.database.messages([client.room])[client.room]


async def test_an_immediately_retried_send_is_acknowledged_without_overtaking_earlier_messages(
    servers,
):
    """A client resends each client_id at once (a retry racing its own acknowledgement) while
    another member writes to the same room. The retry's acknowledgement must not reach the
    socket ahead of earlier messages it has not been sent yet: every new article arrives in seq
    order (reordered 0), and each client_id is still stored once."""
    count = int(scale("RETRY_MESSAGES", 100))
    fixtures = servers.setup_fixtures(prefix=prefix("retry"), users=2, rooms=1)
    urls = [servers.servers[0].ws, servers.servers[1].ws]
    clients = make_clients(fixtures, per_room=2, urls=urls)
    retrier, other = clients
    background = Sender(other, count=count * 2, interval=0.01, window=20, ack_timeout=15)
    quick = Sender(retrier, count=count, interval=0.02, window=5, ack_timeout=15)
    original = quick._transmit

    async def transmit_twice(client_id, *, resend=False):
        await original(client_id, resend=resend)
        if not resend:
            await original(client_id, resend=True)  # the retry, before any acknowledgement

    quick._transmit = transmit_twice
    try:
        await start(clients)
        deadline = time.monotonic() + 90
        await asyncio.gather(background.run(deadline), quick.run(deadline))
        converge = await wait_converged(servers.database, clients, timeout=30)
        figures, violations = verify(servers.database, clients, [background, quick])
        summary = {
            "sent": figures["sent"],
            "stored": figures["stored"],
            "retries": quick.resends,
            "lost": figures["lost"],
            "duplicated": figures["duplicated"],
            "reordered": figures["reordered"],
            "retrier_reordered": retrier.reordered,
            "dup_frames": figures["dup_frames"],
            "unacked": figures["unacked"],
            "converge_ms": converge_ms(converge),
        }
        record("retry_order", summary, violations, all_figures=figures)
        assert not violations, violations
    finally:
        await stop(clients)


def layer_drops(server) -> int:
    """Messages the lossy layer of ``server`` threw away (it logs each one)."""
    if not server.log_path.exists():
        return 0
    return server.log_path.read_text(errors="replace").count(DROP_MARK)


async def test_messages_the_channel_layer_drops_are_filled_in_from_the_database(servers):
    """Three processes, one of them with a channel layer that loses every third message it
    receives; eight members of a room all write in bursts at once. Every member still ends with
    every message, in order: a socket fills a gap from the database before the next live
    message."""
    if servers.channel_layer != "core":
        pytest.skip("the lossy layer is a subclass of the core layer")
    members = 8
    count = int(scale("LOSSY_MESSAGES", 400))
    lossy = servers.lossy_server()
    fixtures = servers.setup_fixtures(prefix=prefix("lossy"), users=members, rooms=1)
    urls = [lossy.ws, servers.servers[0].ws, servers.servers[1].ws]
    clients = make_clients(fixtures, per_room=members, urls=urls)
    senders = [
        Sender(client, count=count // members, interval=0, window=20, ack_timeout=15)
        for client in clients
    ]
    final = Sender(clients[1], count=1, interval=0, ack_timeout=15)  # clients[1]: server 0
    drops_before = layer_drops(lossy)
    try:
        await start(clients)
        deadline = time.monotonic() + 90
        await asyncio.gather(*(sender.run(deadline) for sender in senders))
        # The burst's last message may itself be dropped: one more through a normal server
        # makes every socket notice now (otherwise the periodic check finds it within ~25 s).
        await final.run(deadline)
        converge = await wait_converged(servers.database, clients, timeout=40)
        figures, violations = verify(servers.database, clients, [*senders, final])
        drops = layer_drops(lossy) - drops_before
        if not drops:
            violations.append("the channel layer dropped nothing: the case tested no gap fill")
        summary = {
            **pick(figures, *OUTCOME),
            "layer_drops": drops,
            "gap_fill_frames": sum(c.batch_frames for c in clients),
            "gap_filled_articles": sum(c.batched_articles for c in clients),
            **pick(figures, "dup_frames", "resends", "reconnects", "reloads", "unacked"),
            **pick(figures, "p95_latency_ms", "max_latency_ms"),
            "converge_ms": converge_ms(converge),
        }
        record("lossy_layer", summary, violations, all_figures=figures)
        assert not violations, violations
    finally:
        await stop(clients)
