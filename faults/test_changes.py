"""Timeline changes on the exactly-once stream (issue 9): a client that was away while others
edited, deleted and reacted — over their websockets and over the API — resumes to every
message's current state, each once; a fresh page load shows the same state; and the same holds
when the channel layer loses live changes.

Each message's state is compared three ways: the database (the truth), the whole <article>
each client holds last for it (version, tombstone, reactions and who made them, the stored
HTML, the reply it quotes), and the room page's articles."""

import asyncio
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from .chatclient import ChatClient, Sender, Servers
from .checks import converge_ms, ms, record
from .scenario import prefix, stop
from .test_delivery import layer_drops

pytestmark = pytest.mark.faults

WHOLE_ARTICLE = re.compile(r'<article id="message-(\d+)"([^>]*)>(.*?)</article>', re.S)
VERSION = re.compile(r'data-version="(\d+)"')
REPLY_TO = re.compile(r'data-reply-to="(\d+)"')
BUTTON = re.compile(r"<button\b[^>]*>")
ATTR = re.compile(r'(data-[a-z-]+)="([^"]*)"')


def article_state(article: str) -> dict:
    """What one <article> says about its message (see the contract in the README)."""
    match = WHOLE_ARTICLE.match(article)
    attrs, inner = match.group(2), match.group(3)
    reactions = {}
    for button in BUTTON.findall(inner):
        data = dict(ATTR.findall(button))
        if "data-emoji" in data and "data-users" in data:
            reactions[data["data-emoji"]] = [int(u) for u in data["data-users"].split()]
    reply = REPLY_TO.search(attrs)
    return {
        "version": int(VERSION.search(attrs).group(1)),
        "deleted": "data-deleted" in attrs,
        "reply_to": int(reply.group(1)) if reply else None,
        "reactions": reactions,
        "inner": inner,
    }


def differences(pk: int, article: str | None, truth: dict) -> list[str]:
    """How the article held for message ``pk`` differs from the database's row."""
    if article is None:
        return [f"message {pk}: no article"]
    got = article_state(article)
    out = []
    for key in ("version", "deleted", "reply_to", "reactions"):
        if got[key] != truth[key]:
            out.append(f"message {pk}: {key} {got[key]!r}, database {truth[key]!r}")
    if truth["deleted"]:
        if truth["html"] or got["reactions"]:
            out.append(f"message {pk}: a tombstone with a body or reactions")
    elif truth["html"] not in got["inner"]:
        out.append(f"message {pk}: the article lacks the stored HTML {truth['html'][:60]!r}")
    return out


def holds_current_state(client: ChatClient, state: dict[int, dict]) -> bool:
    return set(client.held) == set(state) and all(
        client.versions.get(pk) == row["version"] for pk, row in state.items()
    )


async def wait_state(database, room: int, clients: list[ChatClient], timeout: float):
    """Seconds until every client holds every message of the room at its current version
    (None after ``timeout``)."""
    started = time.monotonic()
    while True:
        state = await asyncio.to_thread(database.timeline, room)
        if all(holds_current_state(client, state) for client in clients):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(0.2)


async def until(condition, timeout: float = 15) -> None:
    """Wait for ``condition()`` (run in a thread: it may read the database)."""
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(condition):
            await asyncio.sleep(0.1)


def http(server, method: str, path: str, *, token=None, session=None, payload=None):
    """(status, body) of one request to ``server``."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    if session:
        headers["Cookie"] = f"sessionid={session}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        f"{server.http}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


async def sent_ids(sender: Sender, count: int, timeout: float = 30) -> list[int]:
    """The message ids of the sender's first ``count`` sends, once all are acknowledged."""
    async with asyncio.timeout(timeout):
        while len(sender.acked) < count:
            await asyncio.sleep(0.05)
    return [sender.acked[cid][1] for cid in list(sender.first_sent)[:count]]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("layer", ["healthy", "lossy"])
async def test_a_client_away_during_edits_deletes_and_reactions_resumes_to_the_current_state(
    servers, layer
):
    """Three members: the room's owner changes things (websocket and API), a watcher stays
    connected (and reacts and edits too), a third member is away meanwhile — its socket
    killed, no close handshake — and reconnects to another process. Its resume must bring
    every message created or changed meanwhile exactly once, in version order, in one frame;
    afterwards more changes arrive live. In the end every client holds every message at its
    current version, each article matching the database, and so does a fresh page load.

    ``lossy``: the watcher and the returning member are on the process whose channel layer
    loses every third message, so live changes must be filled in from the database too."""
    if layer == "lossy" and servers.channel_layer != "core":
        pytest.skip("the lossy layer is a subclass of the core layer")
    fixtures = servers.setup_fixtures(
        prefix=prefix(f"changes-{layer}"), users=3, rooms=1, tokens=True
    )
    owner_user, away_user, watcher_user = fixtures["users"]
    room = fixtures["rooms"][0]["id"]
    s0, s1, s2 = servers.servers[:3]
    lossy = servers.lossy_server() if layer == "lossy" else None
    # The away member starts on s0 and comes back on the next server of its list.
    away_urls = [s0.ws, lossy.ws] if lossy else [s0.ws, s2.ws]
    watcher_urls = [lossy.ws, s0.ws] if lossy else [s2.ws, s0.ws]

    def client(user, urls):
        return ChatClient(
            name=user["username"],
            session=user["session"],
            room=room,
            servers=Servers(urls),
            keep_articles=True,
        )

    owner = client(owner_user, [s1.ws, s2.ws])
    away = client(away_user, away_urls)
    watcher = client(watcher_user, watcher_urls)
    clients = [owner, away, watcher]
    drops_before = layer_drops(lossy) if lossy else 0
    api_statuses: list[tuple[str, int, int]] = []  # (what, expected, got)

    async def api(what: str, expected: int, method: str, path: str, payload=None) -> None:
        status, body = await asyncio.to_thread(
            http, s1, method, path, token=owner_user["token"], payload=payload
        )
        api_statuses.append((what, expected, status))
        assert status == expected, f"API {what}: {status} {body[:200]}"

    async def ws(member: ChatClient, frame: dict) -> None:
        assert await member.send_json(frame), f"{member.name} is not connected"

    try:
        for member in clients:
            member.begin()
        async with asyncio.timeout(30):
            for member in clients:
                await member.connected.wait()

        # The timeline before: messages by everyone, and replies to three of them.
        by = {
            member.name: Sender(member, count=n, interval=0, window=20, ack_timeout=10)
            for member, n in ((owner, 8), (away, 4), (watcher, 2))
        }
        deadline = time.monotonic() + 60
        await asyncio.gather(*(sender.run(deadline) for sender in by.values()))
        b = await sent_ids(by[owner.name], 8)
        a = await sent_ids(by[away.name], 4)
        c = await sent_ids(by[watcher.name], 2)
        await by[watcher.name].send_one("replying to b0", reply_to=b[0])  # b0 gets edited
        await by[watcher.name].send_one("replying to b1", reply_to=b[1])  # b1 gets deleted
        await by[owner.name].send_one("replying to a0", reply_to=a[0])  # a0: the owner deletes
        reply_b0, _ = (await sent_ids(by[watcher.name], 4))[2:]
        await sent_ids(by[owner.name], 9)
        assert await wait_state(servers.database, room, clients, timeout=20) is not None

        # Away: the socket dies without a close frame; it stays away until online().
        await away.offline()
        away_had = away.highest
        opens_before = away.opens

        # Over the websockets: edits, a delete, reactions added and taken back.
        for frame in (
            {"type": "edit", "id": b[0], "body": "b0, **edited**"},
            {"type": "edit", "id": b[2], "body": "b2, edited once"},
            {"type": "edit", "id": b[2], "body": "b2, edited twice"},
            {"type": "delete", "id": b[1]},
            {"type": "react", "id": a[1], "emoji": "👍"},
            {"type": "react", "id": b[3], "emoji": "🎉"},
            {"type": "react", "id": a[2], "emoji": "🔥"},
            {"type": "unreact", "id": a[2], "emoji": "🔥"},
            {"type": "react", "id": b[4], "emoji": "👍"},
        ):
            await ws(owner, frame)
        await ws(watcher, {"type": "react", "id": a[1], "emoji": "👍"})
        await ws(watcher, {"type": "edit", "id": c[0], "body": "c0, edited while away was away"})
        # New messages while away, one of them edited at once.
        await by[owner.name].send_one("new while away 1")
        await by[owner.name].send_one("new while away 2")
        fresh = (await sent_ids(by[owner.name], 11))[9:]
        await ws(owner, {"type": "edit", "id": fresh[0], "body": "new while away 1, edited"})
        # Over the API (the owner's token): edit, the owner deleting someone else's message,
        # a reaction added, one taken back (added over the websocket above), a delete.
        base = f"/api/rooms/{room}/messages"
        await api("edit", 200, "PATCH", f"{base}/{b[5]}/", {"body": "b5, edited over the API"})
        await api("owner deletes a0", 204, "DELETE", f"{base}/{a[0]}/")
        await api("react", 201, "POST", f"{base}/{a[3]}/reactions/", {"emoji": "🎉"})
        await until(lambda: "👍" in servers.database.timeline(room)[b[4]]["reactions"], timeout=15)
        thumbs = urllib.parse.quote("👍")
        await api("unreact", 204, "DELETE", f"{base}/{b[4]}/reactions/{thumbs}/")
        await api("delete", 204, "DELETE", f"{base}/{b[6]}/")
        # A socket handles its frames one after the other: once a message sent after them is
        # acknowledged, every change sent before it is in the database.
        await by[owner.name].send_one("owner: done while away")
        await by[watcher.name].send_one("watcher: done while away")
        await sent_ids(by[owner.name], 12)
        await sent_ids(by[watcher.name], 5)
        present = [owner, watcher]
        assert await wait_state(servers.database, room, present, timeout=30) is not None, (
            "the members who stayed never caught up with the changes"
        )
        changed_meanwhile = {
            pk: row["version"]
            for pk, row in (await asyncio.to_thread(servers.database.timeline, room)).items()
            if row["version"] > away_had
        }

        # Back: resume (on another process), then more changes arrive live.
        back_at = time.monotonic()
        away.online()
        back_converged = await wait_state(servers.database, room, [away], timeout=30)
        back_ms = converge_ms(back_converged)
        answer = away.resume_answers[-1] if away.opens > opens_before else []
        for frame in (
            {"type": "edit", "id": b[7], "body": "b7, live 1"},
            {"type": "react", "id": a[1], "emoji": "🎉"},
            {"type": "react", "id": c[1], "emoji": "👍"},
            {"type": "edit", "id": b[3], "body": "b3, live"},
            {"type": "unreact", "id": a[1], "emoji": "🎉"},
            {"type": "react", "id": b[5], "emoji": "🔥"},
            {"type": "edit", "id": b[7], "body": "b7, live 2"},
            {"type": "react", "id": reply_b0, "emoji": "👍"},
            {"type": "edit", "id": b[2], "body": "b2, edited three times"},
            {"type": "unreact", "id": c[1], "emoji": "👍"},
            {"type": "react", "id": a[2], "emoji": "👀"},
            {"type": "edit", "id": b[7], "body": "b7, live 3"},
        ):
            await ws(owner, frame)
        # A last message through a healthy process: a socket that lost the last change live
        # notices the gap now (else the hub's periodic check finds it within ~12 s).
        await by[owner.name].send_one("the last one")
        await sent_ids(by[owner.name], 13)
        converged = await wait_state(servers.database, room, clients, timeout=45)
        total_s = time.monotonic() - back_at

        # A fresh page load, as the member who was away.
        status, page = await asyncio.to_thread(
            http, s2, "GET", f"/chat/room/{room}/", session=away_user["session"]
        )
        state = await asyncio.to_thread(servers.database.timeline, room)

        violations = []
        if converged is None:
            for member in clients:
                if not holds_current_state(member, state):
                    missing = sorted(set(state) - set(member.held))
                    behind = sorted(
                        pk
                        for pk, row in state.items()
                        if pk in member.held and member.versions[pk] != row["version"]
                    )
                    violations.append(
                        f"{member.name} lacks {missing[:10]}, holds an old version of "
                        f"{behind[:10]} (closes {member.closes[-5:]})"
                    )
        # The answer to the resume: every message created or changed while away, each once,
        # in version order, in that one frame.
        answer_ids = [pk for pk, _ in answer]
        if sorted(answer_ids) != sorted(changed_meanwhile):
            violations.append(
                f"the resume answered {sorted(answer_ids)}, expected {sorted(changed_meanwhile)}"
            )
        if len(answer_ids) != len(set(answer_ids)):
            violations.append(f"the resume answer repeats ids: {answer_ids}")
        if [v for _, v in answer] != sorted(v for _, v in answer):
            violations.append(f"the resume answer is not in version order: {answer}")
        for member in clients:
            if member.stale:
                violations.append(
                    f"{member.name}: {member.stale} versions went backwards "
                    f"(id, held, got): {member.stale_samples}"
                )
            if member.errors:
                violations.append(f"{member.name} got error frames: {member.errors[:3]}")
        for member in (away, watcher):  # they send no message: nothing may come twice
            if member.repeated_versions:
                violations.append(
                    f"{member.name} got these (id, version) twice: {member.repeated_versions[:5]}"
                )
        mismatches = [
            difference
            for member in clients
            for pk, row in state.items()
            for difference in differences(pk, member.articles_html.get(pk), row)
        ]
        violations += mismatches[:10]
        page_articles = [m.group(0) for m in WHOLE_ARTICLE.finditer(page)] if status == 200 else []
        page_ids = [int(WHOLE_ARTICLE.match(x).group(1)) for x in page_articles]
        if status != 200:
            violations.append(f"the room page answered {status}")
        elif sorted(page_ids) != sorted(state) or len(page_ids) != len(set(page_ids)):
            violations.append(f"the page shows {sorted(page_ids)}, the room has {sorted(state)}")
        page_mismatches = [
            difference
            for article in page_articles
            for difference in differences(
                int(WHOLE_ARTICLE.match(article).group(1)),
                article,
                state[int(WHOLE_ARTICLE.match(article).group(1))],
            )
        ]
        violations += page_mismatches[:10]
        drops = (layer_drops(lossy) - drops_before) if lossy else 0
        if lossy and not drops:
            violations.append("the channel layer dropped nothing: the case tested no gap fill")
        figures = {
            "messages": len(state),
            "deleted": sum(row["deleted"] for row in state.values()),
            "reactions": sum(len(u) for row in state.values() for u in row["reactions"].values()),
            "changes_seen_by_watcher": watcher.changes,
            "api_calls": len(api_statuses),
            "changed_while_away": len(changed_meanwhile),
            "resume_answer_articles": len(answer_ids),
            "resume_ms": back_ms,
            "stale": sum(member.stale for member in clients),
            "repeated": len(away.repeated_versions) + len(watcher.repeated_versions),
            "article_mismatches": len(mismatches),
            "page_articles": len(page_ids),
            "page_mismatches": len(page_mismatches),
            "layer_drops": drops,
            "gap_fill_frames": sum(member.batch_frames for member in clients),
            "converge_after_return_ms": ms(total_s) if converged is not None else "timeout",
        }
        record(f"changes_{layer}", figures, violations)
        assert not violations, violations
    finally:
        await stop(clients)
