"""A page that loses its network catches up without a reload.

Bob's page reaches the server through a TCP proxy of the test's own. Cutting the proxy resets
every connection (the browser sees close code 1006, exactly as when a Wi-Fi link drops) and
refuses new ones; Playwright also puts the browser context offline, so the page gets its
`offline`/`online` events. Meanwhile Alice sends three messages. When the network is back the
page reconnects, resumes, and shows the three once each, in order, with the connection banner
having gone reconnecting → connected.
"""

import contextlib
import re
import secrets
import socket
import threading

from playwright.sync_api import expect

ROOM_URL = re.compile(r"/chat/room/(\d+)/$")


class CuttableProxy:
    """127.0.0.1:<port> → the ASGI server; ``cut()`` resets every connection and refuses new
    ones until ``restore()``."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.is_cut = False
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _reset(s: socket.socket) -> None:
        """Close with RST (linger 0): the peer sees a dead connection, not a clean close."""
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        except OSError:
            pass

    def cut(self) -> None:
        self.is_cut = True
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for client, upstream in pairs:
            self._reset(client)
            self._reset(upstream)

    def restore(self) -> None:
        self.is_cut = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


def create_room(page) -> str:
    page.goto("/")
    page.locator("#room-create-form input[name=name]").fill(f"net-{secrets.token_hex(3)}")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url(ROOM_URL)
    return page.url


def send(page, text: str) -> None:
    composer = page.locator("#composer-body")
    composer.fill(text)
    composer.press("Enter")


RECORD_STATES = """() => {
  const status = document.getElementById("connection-status");
  window.__states = [status.dataset.state];
  new MutationObserver(() => {
    const state = status.dataset.state;
    if (window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  }).observe(status, { attributes: true, attributeFilter: ["data-state"] });
}"""


def test_a_page_that_lost_its_network_shows_what_it_missed_once_in_order_without_a_reload(
    new_user, asgi_server
):
    alice = new_user("alice")
    bob = new_user("bob")
    room_url = create_room(alice.page)
    path = re.search(r"/chat/room/\d+/$", room_url).group(0)
    port = int(re.search(r":(\d+)/", asgi_server.url + "/").group(1))
    proxy = CuttableProxy(port)
    try:
        # Same host, another port: the session cookie (host-scoped) comes along.
        bob.page.goto(f"http://127.0.0.1:{proxy.port}{path}")
        status = bob.page.locator("#connection-status")
        expect(status).to_have_attribute("data-state", "connected")
        expect(alice.page.locator("#connection-status")).to_have_attribute(
            "data-state", "connected"
        )
        bob.page.evaluate("window.__e2eNoReload = 'still here'")
        bob.page.evaluate(RECORD_STATES)

        bob.context.set_offline(True)
        proxy.cut()
        expect(status).not_to_have_attribute("data-state", "connected")

        texts = [f"while you were away {i} {secrets.token_hex(2)}" for i in range(3)]
        for text in texts:
            send(alice.page, text)
            expect(alice.page.locator("#message-list article", has_text=text)).to_have_count(1)
        articles = bob.page.locator("#message-list article", has_text="while you were away")
        expect(articles).to_have_count(0)  # Bob's page cannot have them yet

        proxy.restore()
        bob.context.set_offline(False)

        expect(articles).to_have_count(3, timeout=45_000)
        expect(status).to_have_attribute("data-state", "connected", timeout=45_000)
        bob.page.wait_for_timeout(1000)  # a late duplicate would show up now
        expect(articles).to_have_count(3)
        shown = articles.evaluate_all(
            "els => els.map(e => [e.querySelector('.message-body').textContent, +e.dataset.seq])"
        )
        assert [body for body, _ in shown] == texts
        seqs = [seq for _, seq in shown]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        all_seqs = bob.page.locator("#message-list article").evaluate_all(
            "els => els.map(e => +e.dataset.seq)"
        )
        assert all_seqs == sorted(set(all_seqs)), "a message shown twice or out of order"
        assert bob.page.evaluate("window.__e2eNoReload") == "still here"

        states = bob.page.evaluate("window.__states")
        print(f"\nconnection-status data-state sequence: {states}")
        assert "reconnecting" in states, states
        last_reconnecting = len(states) - 1 - states[::-1].index("reconnecting")
        assert "connected" in states[last_reconnecting:], states
        assert states[-1] == "connected", states
    finally:
        proxy.close()


def test_the_banner_says_connected_again_when_the_network_returns_and_the_socket_survived(
    new_user,
):
    """Chromium keeps an open websocket through a short offline spell (the `offline` event
    fires, the TCP connection lives on). When the network returns the banner must not stay
    "Offline" while messages keep arriving: it says connected, and nothing was missed."""
    alice = new_user("alice")
    bob = new_user("bob")
    room_url = create_room(alice.page)
    bob.page.goto(room_url)
    status = bob.page.locator("#connection-status")
    expect(status).to_have_attribute("data-state", "connected")
    bob.page.evaluate(RECORD_STATES)

    bob.context.set_offline(True)
    expect(status).to_have_attribute("data-state", "offline")
    bob.context.set_offline(False)
    text = f"after the blip {secrets.token_hex(2)}"
    send(alice.page, text)
    expect(bob.page.locator("#message-list article", has_text=text)).to_have_count(1)
    expect(status).to_have_attribute("data-state", "connected", timeout=15_000)
    print(f"\nconnection-status data-state sequence: {bob.page.evaluate('window.__states')}")
