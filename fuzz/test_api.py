"""The API proved against its own OpenAPI schema (issue 13), on a real server (fuzz/conftest.py).

1. schemathesis (CLI, its own process) runs the examples, coverage, fuzzing and stateful
   phases (the stateful one follows the schema's OpenAPI links, apps/api/schema_links.py) as
   user A, then as user B, with a fixed seed and a bounded number of cases per operation.
   Checks: no 5xx, every status code documented, every body valid against its schema, the
   documented Content-Type and headers. Any failure fails the test, with schemathesis's
   report (and a curl line to replay it).
2. Object-level authorization: A makes private objects (a private room, a DM, a message in
   each, a reaction, an unsent attachment, a webhook, a token, a bot and its token); then B calls
   every operation that has a path parameter with A's ids. Every answer must be 404 (never 200,
   403 or 500: B must not even learn that the object exists), and A's objects are unchanged.

Reproduce: `make fuzz` (FUZZ_SEED, FUZZ_EXAMPLES override the seed and the per-operation budget;
FUZZ_PHASES and FUZZ_CHECKS the phases and checks, comma-separated as `st run` takes them).
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from faults.harness import BASE_DIR
from fuzz import SUMMARY

SEED = int(os.environ.get("FUZZ_SEED", "13"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
PHASES = os.environ.get("FUZZ_PHASES", "examples,coverage,fuzzing,stateful")
CHECKS = os.environ.get("FUZZ_CHECKS") or ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "response_schema_conformance",
        "content_type_conformance",
        "response_headers_conformance",
    ]
)
ST = str(Path(sys.executable).parent / "st")


def run_schemathesis(api, user, label: str) -> subprocess.CompletedProcess:
    report_dir = api.workdir / f"schemathesis-{label}"
    args = [
        ST,
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{api.url}/api/schema/",
        "--phases",
        PHASES,
        "--checks",
        CHECKS,
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "fuzz.hooks",
        "PYTHONPATH": str(BASE_DIR),
        "PARLEY_FUZZ_TOKEN": user.token,
        "PARLEY_FUZZ_TOKEN_ID": str(user.token_id),
        "PARLEY_FUZZ_SPARE_TOKENS": json.dumps(user.spare_tokens),
    }
    started = time.monotonic()
    done = subprocess.run(
        args, cwd=api.workdir, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    seconds = time.monotonic() - started
    (api.workdir / f"schemathesis-{label}.log").write_text(done.stdout + done.stderr)
    figures = []
    for pattern in (
        r"Tested: \d+",
        r"\d+ generated, [^\n]*",
        r"Scenarios: +\d+",
        r"API Links: +[^\n]*",
        r"Failures:\n(?: +[^\n]+\n)+",
    ):
        found = re.search(pattern, done.stdout)
        if found:
            figures.append(" ".join(found[0].split()))
    SUMMARY.append(
        f"schemathesis as {label} (seed {SEED}, {EXAMPLES} cases per operation, "
        f"{seconds:.0f} s, exit {done.returncode}): {'; '.join(figures)}"
    )
    print(SUMMARY[-1])
    return done


@pytest.mark.timeout(600)  # one run is 1-2 minutes here; pytest's default is 180 s
@pytest.mark.parametrize("who", ["A", "B"])
def test_schemathesis(fuzz_api, who):
    done = run_schemathesis(fuzz_api, fuzz_api.users[who], who)
    assert done.returncode == 0, (
        f"schemathesis as {who} found problems:\n{done.stdout[-20000:]}{done.stderr[-3000:]}"
    )
    # It tested every operation of the schema, statefully too.
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", done.stdout)
    assert selected, done.stdout[-3000:]
    assert selected[1] == selected[2] == selected[3], selected[0]
    assert re.search(r"Scenarios:\s+[1-9]", done.stdout), done.stdout[-3000:]


# --- Object-level authorization ----------------------------------------------------------------
EMOJI = "👍"
# A valid body per operation (B's request must fail for the object, not for its input).
BODIES = {
    "rooms_partial_update": {"topic": "hello"},
    "rooms_members_add": {"username": "{B}"},
    "rooms_membership_partial_update": {"notify": "all"},
    "rooms_messages_send": {"body": "from B"},
    "rooms_read_create": {"seq": 1},
    "messages_edit": {"body": "edited by B"},
    "reactions_add": {"emoji": EMOJI},
    "rooms_webhooks_create": {"name": "B's hook"},
    "bots_update": {"name": "B's name"},
    "bots_tokens_create": {"name": "B's token"},
}
UPLOADS = {"attachments_upload"}
# Not A's private objects: a profile is public to every signed-in user.
PUBLIC = {"profiles_retrieve"}


def _a_private_objects(api) -> list[dict]:
    """A's private objects, made through the API: one id set per room (private room, DM)."""
    a, c = api.users["A"], api.users["C"]
    token = api.ok("POST", "/api/tokens/", a, body={"name": "A's private token"})
    bot = api.ok("POST", "/api/bots/", a, body={"name": "A's bot"})
    bot_token = api.ok("POST", f"/api/bots/{bot['id']}/tokens/", a, body={"name": "bot token"})
    private = api.ok("POST", "/api/rooms/", a, body={"name": "a-private", "private": True})
    api.ok("POST", f"/api/rooms/{private['id']}/members/", a, body={"username": c.username})
    dm = api.ok("POST", "/api/dm/", a, body={"username": c.username})
    sets = []
    for room in (private, dm):
        message = api.ok("POST", f"/api/rooms/{room['id']}/messages/", a, body={"body": "mine"})
        api.ok(
            "POST",
            f"/api/rooms/{room['id']}/messages/{message['id']}/reactions/",
            a,
            body={"emoji": EMOJI},
        )
        attachment = api.ok(
            "POST",
            f"/api/rooms/{room['id']}/attachments/",
            a,
            files=("notes.txt", b"private notes\n", "text/plain"),
        )
        if room is private:  # DMs have no webhooks: the DM's set names the private room's
            webhook = api.ok("POST", f"/api/rooms/{room['id']}/webhooks/", a, body={"name": "h"})
        sets.append(
            {
                "room": room["id"],
                "message": message["id"],
                "attachment": attachment["id"],
                "webhook": webhook["id"],
                "member": c.id,
                "token": token["id"],
                "bot": bot["id"],
                "bot_token": bot_token["id"],
            }
        )
    return sets


def _path_values(path: str, ids: dict) -> dict:
    """The value of each path parameter of ``path`` for A's objects in ``ids``."""
    if path.startswith("/api/tokens/"):
        return {"id": ids["token"]}
    if path.startswith("/api/bots/"):
        return {"id": ids["bot"], "token_id": ids["bot_token"]}
    values = {"room_pk": ids["room"], "user_id": ids["member"], "emoji": quote(EMOJI)}
    if path.startswith("/api/rooms/{id}/"):
        values["id"] = ids["room"]
    elif "/messages/{id}/" in path:
        values["id"] = ids["message"]
    elif "/attachments/{id}/" in path:
        values["id"] = ids["attachment"]
    elif "/webhooks/{id}/" in path:
        values["id"] = ids["webhook"]
    return values


def test_user_b_gets_404_for_every_private_object_of_a(fuzz_api):
    api = fuzz_api
    a, b = api.users["A"], api.users["B"]
    schema = api.ok("GET", "/api/schema/?format=json", a)
    sets = _a_private_objects(api)
    calls, wrong, operations = 0, [], set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            if not names or operation["operationId"] in PUBLIC:
                continue
            operations.add(operation["operationId"])
            for ids in sets:
                values = _path_values(path, ids)
                url = path.format(**{name: values[name] for name in names})
                body = BODIES.get(operation["operationId"])
                if body is not None:
                    body = {k: b.username if v == "{B}" else v for k, v in body.items()}
                files = None
                if operation["operationId"] in UPLOADS:
                    files = ("b.txt", b"from B\n", "text/plain")
                status, payload = api.call(method.upper(), url, b, body=body, files=files)
                calls += 1
                if status != 404:
                    wrong.append(f"{method.upper()} {url} as B: {status} {payload}")
    SUMMARY.append(
        f"object-level authorization: {len(operations)} operations with a path parameter, "
        f"{calls} calls as B with A's ids, {calls - len(wrong)} answered 404"
    )
    print(SUMMARY[-1])
    assert not wrong, "B reached A's private objects:\n" + "\n".join(wrong)
    # And nothing B did changed them: A still sees each one as it was.
    for ids in sets:
        room = api.ok("GET", f"/api/rooms/{ids['room']}/", a)
        assert room["topic"] == ""
        message = api.ok("GET", f"/api/rooms/{ids['room']}/messages/{ids['message']}/", a)
        assert message["body"] == "mine" and not message["deleted"]
        assert [r["emoji"] for r in message["reactions"]] == [EMOJI]
    hooks = api.ok("GET", f"/api/rooms/{sets[0]['room']}/webhooks/", a)["results"]
    assert [h["id"] for h in hooks] == [sets[0]["webhook"]]
    api.ok("GET", f"/api/tokens/{sets[0]['token']}/", a)
    assert api.ok("GET", f"/api/bots/{sets[0]['bot']}/", a)["name"] == "A's bot"
