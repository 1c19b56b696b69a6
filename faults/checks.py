"""What every case checks and reports: the database against what each client holds.

The database is the truth. Per room its seqs must be 1..N without a gap, and every client_id a
sender used must be there exactly once. Per client, the messages it holds after de-duplicating
by id (what the page shows) must be exactly the room's messages, in seq order.
"""

import asyncio
import json
import time
from pathlib import Path

from .chatclient import ChatClient, Sender

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS: dict[str, dict] = {}
SUMMARY_LINES: list[str] = []


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> int:
    return round(seconds * 1000)


# The figures every delivery case reports first (from ``verify``).
OUTCOME = ("sent", "stored", "lost", "duplicated", "reordered")


def pick(figures: dict, *keys: str) -> dict:
    return {key: figures[key] for key in keys}


def converge_ms(converge: float | None) -> int | str:
    """``wait_converged``'s result for a summary line."""
    return ms(converge) if converge is not None else "timeout"


async def wait_converged(database, clients: list[ChatClient], timeout: float) -> float | None:
    """Seconds until every client holds as many messages as its room has (and its last seq),
    or None when ``timeout`` passes first."""
    rooms = sorted({client.room for client in clients})
    started = time.monotonic()
    while True:
        counts = await asyncio.to_thread(database.counts, rooms)
        if all(
            len(client.held) == counts[client.room][0] and client.highest == counts[client.room][1]
            for client in clients
        ):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(0.25)


def verify(database, clients: list[ChatClient], senders: list[Sender]) -> tuple[dict, list[str]]:
    """Compare the database with the senders' client_ids and with every client's copy."""
    rooms = sorted({client.room for client in clients})
    db = database.messages(rooms)
    violations: list[str] = []
    figures: dict = {}

    # The database: gap-free seqs, one row per client_id.
    gaps = 0
    db_duplicates = 0
    for room, rows in db.items():
        seqs = [seq for seq, *_ in rows]
        if seqs != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, (max(seqs) if seqs else 0) + 1)) - set(seqs))
            gaps += len(missing)
            violations.append(f"room {room}: seqs not 1..N (missing {missing[:10]})")
        cids = [cid for _, _, cid, _ in rows if cid]
        if len(cids) != len(set(cids)):
            db_duplicates += len(cids) - len(set(cids))
            violations.append(f"room {room}: {len(cids) - len(set(cids))} client_ids stored twice")
    stored = {cid for rows in db.values() for _, _, cid, _ in rows if cid}
    sent = {cid for sender in senders for cid in sender.first_sent}
    unacked = sum(len(sender.outstanding) for sender in senders)
    never_stored = len(sent - stored)
    if unacked:
        sample = [cid for sender in senders for cid in sender.outstanding][:5]
        violations.append(f"{unacked} sends never acknowledged (e.g. {sample})")
    if never_stored:
        violations.append(f"{never_stored} sent client_ids are not in the database")
    refused = [error for client in clients for error in client.errors]
    if refused:
        violations.append(f"{len(refused)} error frames, e.g. {refused[:3]}")

    # Every client: exactly its room's messages, in order; nothing else.
    lost = extra = out_of_order = 0
    for client in clients:
        expected = [pk for _, pk, _, _ in db[client.room]]
        held = client.sequence()
        missing = set(expected) - set(client.held)
        phantom = set(client.held) - set(expected)
        lost += len(missing)
        extra += len(phantom)
        if missing:
            seq_of = {pk: seq for seq, pk, _, _ in db[client.room]}
            violations.append(
                f"{client.name} (room {client.room}) lacks {len(missing)} messages, seqs "
                f"{sorted(seq_of[pk] for pk in missing)[:10]} (holds {len(held)}, highest "
                f"{client.highest}, closes {client.closes[-5:]}, fatal {client.fatal})"
            )
        if phantom:
            violations.append(f"{client.name} holds {len(phantom)} ids not in the database")
        if not missing and not phantom and held != expected:
            out_of_order += 1
            violations.append(f"{client.name}: held order differs from the database order")
        if client.fatal:
            violations.append(f"{client.name} was closed with {client.fatal}")
    # Whether the frame that jumped ahead was the client's own acknowledgement.
    own = {cid: sender.client.name for sender in senders for cid in sender.first_sent}
    resent = {cid for sender in senders for cid in sender.resent}
    for client in clients:
        client.reorder_samples = [
            (
                *sample,
                "own" if own.get(sample[-1]) == client.name else "other",
                "resent" if sample[-1] in resent else "sent once",
            )
            for sample in client.reorder_samples
        ]

    conflicts = sum(client.conflicts for client in clients)
    reordered = sum(client.reordered for client in clients)
    if conflicts:
        violations.append(f"{conflicts} seqs arrived with two different message ids")
    if reordered:
        worst = sorted(clients, key=lambda c: -c.reordered)[:3]
        violations.append(
            f"reordered={reordered}: new articles arrived below the highest seq already held "
            f"(worst: {[(c.name, c.reordered) for c in worst]}; samples (late seq, highest "
            f"held, the frame that brought that highest: kind, client_id, whose, resent?): "
            f"{worst[0].reorder_samples[:3]})"
        )

    # Latency: first send of a client_id → first arrival at each member of the room.
    first_sent = {cid: t for sender in senders for cid, t in sender.first_sent.items()}
    deliveries = [
        (client.first_seen[pk] - first_sent[cid], client, pk)
        for client in clients
        for pk, cid in client.client_ids.items()
        if cid in first_sent and pk in client.first_seen
    ]
    latencies = [latency for latency, _, _ in deliveries]
    if deliveries:
        latency, client, pk = max(deliveries, key=lambda d: d[0])
        kind, server = client.arrival[pk]
        figures["slowest_delivery"] = (
            f"{ms(latency)}ms:{client.name}:seq{client.held[pk]}:{kind}:{server.rsplit(':', 1)[-1]}"
        )
    ack_latencies = [
        t - sender.first_sent[cid] for sender in senders for cid, (t, _, _) in sender.acked.items()
    ]
    reconnects = [s for client in clients for s in client.reconnect_s]
    figures.update(
        {
            "clients": len(clients),
            "rooms": len(rooms),
            "sent": len(sent),
            "stored": sum(len(rows) for rows in db.values()),
            "delivered": sum(len(client.held) for client in clients),
            "expected_deliveries": sum(len(db[client.room]) for client in clients),
            "lost": lost,
            "duplicated": conflicts + db_duplicates + extra,
            "reordered": reordered,
            "out_of_order_clients": out_of_order,
            "db_gaps": gaps,
            "unacked": unacked,
            "resends": sum(sender.resends for sender in senders),
            "dup_frames": sum(client.dup_frames for client in clients),
            "frames": sum(client.frames for client in clients),
            "reloads": sum(client.reloads for client in clients),
            "reconnects": len(reconnects),
            "reconnect_p95_ms": ms(percentile(reconnects, 95)),
            "reconnect_max_ms": ms(max(reconnects, default=0)),
            "connect_failures": sum(client.connect_failures for client in clients),
            "p50_latency_ms": ms(percentile(latencies, 50)),
            "p95_latency_ms": ms(percentile(latencies, 95)),
            "max_latency_ms": ms(max(latencies, default=0)),
            "p95_ack_ms": ms(percentile(ack_latencies, 95)),
        }
    )
    return figures, violations


def record(case: str, figures: dict, violations: list[str], **context) -> str:
    """Print the case's one summary line, keep it for the terminal summary and latest.json."""
    line = f"{case}: " + " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\n{line}")
    for violation in violations:
        print(f"  VIOLATION {violation}")
    SUMMARY_LINES.append(line)
    RESULTS[case] = {"figures": figures, "violations": violations, **context}
    write_results()
    return line


def write_results(meta: dict | None = None) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "latest.json"
    payload = {"meta": meta or RESULTS.get("_meta", {}), "cases": {}}
    for case, data in RESULTS.items():
        if case != "_meta":
            payload["cases"][case] = data
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
