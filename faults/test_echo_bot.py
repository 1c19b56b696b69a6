"""examples/echo_bot.py against real servers (issue 13 item 8): the bot, a subprocess with a
personal access token, answers each new message exactly once — not the history before its first
start — and when its server is killed (no close frame) and started again, it reconnects with
backoff, catches up and answers what was posted meanwhile (through another server), once.

Waits are conditions with deadlines (upper bounds only), never fixed sleeps."""

import json
import os
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from .checks import record
from .harness import BASE_DIR, PYTHON
from .scenario import prefix

pytestmark = pytest.mark.faults


def api_post(server, token: str, path: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"{server.http}{path}",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.load(response)


class BotProcess:
    """The example bot in a subprocess; its output lines go to a queue (and a log file)."""

    def __init__(self, args: list[str], env: dict, log_path):
        self.log_path = log_path
        self.lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [PYTHON, "examples/echo_bot.py", *args],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with self.log_path.open("a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.lines.put(line.rstrip("\n"))

    def wait_line(self, startswith: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                pytest.fail(f"the bot printed no {startswith!r}:\n{self.log_path.read_text()}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line.startswith(startswith):
                return line

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.mark.timeout(180)
def test_the_echo_bot_answers_each_message_once_across_a_server_restart(servers, tmp_path):
    fixtures = servers.setup_fixtures(prefix=prefix("echo"), users=2, rooms=1, tokens=True)
    human, bot_user = fixtures["users"]
    room_id = fixtures["rooms"][0]["id"]
    server, other = servers.servers[0], servers.servers[1]
    path = f"/api/rooms/{room_id}/messages/"

    def bodies() -> list[tuple[str, int]]:
        rows = servers.database._query(
            "SELECT body, author_id FROM chat_message WHERE room_id = ? ORDER BY seq", [room_id]
        )
        return [(body, author) for body, author in rows]

    def echoes() -> Counter:
        return Counter(body for body, author in bodies() if author == bot_user["id"])

    def wait_for_echo(text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while echoes()[f"echo: {text}"] < 1:
            if time.monotonic() > deadline:
                pytest.fail(f"no echo of {text!r} within {timeout} s: {bodies()}\n{bot.log()}")
            time.sleep(0.1)

    api_post(server, human["token"], path, {"body": "history before the bot"})
    env = {
        **os.environ,
        "PARLEY_TOKEN": bot_user["token"],
        "PARLEY_ROOM": str(room_id),
        "PARLEY_URL": server.http,
        "PARLEY_MAX_BACKOFF": "1",
    }
    bot = BotProcess([], env, tmp_path / "echo-bot.log")
    try:
        started = time.monotonic()
        bot.wait_line("caught_up", timeout=30)
        for text in ("hello", "a second one", "and a third"):
            api_post(server, human["token"], path, {"body": text})
        for text in ("hello", "a second one", "and a third"):
            wait_for_echo(text)
        live_seconds = time.monotonic() - started

        # The bot's server dies without a close frame; a message is posted elsewhere meanwhile.
        server.kill()
        killed = time.monotonic()
        api_post(other, human["token"], path, {"body": "while you were away"})
        server.spawn()
        server.wait_ready()
        wait_for_echo("while you were away", timeout=60)
        recovery_seconds = time.monotonic() - killed
        # Live again after the reconnect; and its echo comes after any late duplicate would.
        api_post(server, human["token"], path, {"body": "welcome back"})
        wait_for_echo("welcome back")
    finally:
        bot.stop()
        servers.ensure_running()

    counted = echoes()
    expected = ["hello", "a second one", "and a third", "while you were away", "welcome back"]
    violations = [
        f"{text!r} echoed {counted[f'echo: {text}']} times"
        for text in expected
        if counted[f"echo: {text}"] != 1
    ]
    if counted["echo: history before the bot"]:
        violations.append("the history before the first start was echoed")
    if sum(counted.values()) != len(expected):
        violations.append(f"unexpected echoes: {counted}")
    record(
        "echo_bot",
        {
            "echoes": sum(counted.values()),
            "live_s": round(live_seconds, 2),
            "recovery_s": round(recovery_seconds, 2),
        },
        violations,
    )
    assert not violations, (violations, bodies(), bot.log())
