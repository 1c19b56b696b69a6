"""Public rooms in real browsers: live delivery over the websocket, and a rejected message."""

import re

from pages import create_room, wait_connected
from playwright.sync_api import expect


def send(page, text: str) -> None:
    composer = page.locator("#composer-body")
    composer.fill(text)
    composer.press("Enter")


def test_a_message_sent_by_one_user_appears_for_another_without_a_reload(new_user):
    alice = new_user("alice")
    bob = new_user("bob")
    room_url = create_room(alice.page)
    bob.page.goto(room_url)
    wait_connected(alice.page)
    wait_connected(bob.page)
    # A reload or navigation would wipe this.
    bob.page.evaluate("window.__e2eNoReload = 'still here'")

    text = f"Hello Bob, this is {alice.username}"
    send(alice.page, text)

    received = bob.page.locator("#message-list article", has_text=text)
    expect(received).to_have_count(1)
    expect(received).to_have_id(re.compile(r"^message-\d+$"))
    expect(received).to_have_attribute("data-seq", "1")
    assert bob.page.evaluate("window.__e2eNoReload") == "still here"
    assert bob.page.url == room_url

    # The sender sees her own message once, and the composer empties after the acknowledgement.
    expect(alice.page.locator("#message-list article", has_text=text)).to_have_count(1)
    expect(alice.page.locator("#composer-body")).to_have_value("")
    expect(alice.page.locator("#composer-error")).to_have_text("")

    reply = f"Hi {alice.username}!"
    send(bob.page, reply)
    answer = alice.page.locator("#message-list article", has_text=reply)
    expect(answer).to_have_attribute("data-seq", "2")
    assert received.get_attribute("id") != answer.get_attribute("id")


def test_an_oversized_message_is_refused_with_an_error_and_the_composer_keeps_it(new_user):
    """A client that ignores the textarea's maxlength sends 4001 characters over the websocket:
    the server refuses it, the page shows why, nothing is posted and the text stays put."""
    carol = new_user("carol")
    create_room(carol.page)
    wait_connected(carol.page)
    too_long = "x" * 4001
    composer = carol.page.locator("#composer-body")
    composer.evaluate("(el, text) => { el.value = text; }", too_long)
    composer.press("Enter")

    expect(carol.page.locator("#composer-error")).to_have_text(re.compile(r"\S"))
    assert composer.input_value() == too_long
    expect(carol.page.locator("#message-list article")).to_have_count(0)

    # The same composer still works afterwards, and a good message clears the error.
    send(carol.page, "a short one")
    expect(carol.page.locator("#message-list article", has_text="a short one")).to_have_count(1)
    expect(carol.page.locator("#composer-error")).to_have_text("")
    expect(composer).to_have_value("")


def test_an_idle_connection_stays_open_and_keeps_receiving(new_user):
    """A room left quiet for longer than the channel layer's blocking read (5 s with Redis)
    keeps its websocket: no reconnect, and the next message still arrives live."""
    heidi = new_user("heidi")
    ivan = new_user("ivan")
    room_url = create_room(heidi.page)
    ivan.page.goto(room_url)
    wait_connected(heidi.page)
    wait_connected(ivan.page)
    ivan.page.evaluate(
        """() => {
            window.__e2eSocketEvents = [];
            for (const name of ["htmx:wsClose", "htmx:wsOpen"]) {
                document.body.addEventListener(name, () => window.__e2eSocketEvents.push(name));
            }
        }"""
    )
    ivan.page.wait_for_timeout(7_000)

    send(heidi.page, "still there?")
    expect(ivan.page.locator("#message-list article", has_text="still there?")).to_have_count(1)
    assert ivan.page.evaluate("window.__e2eSocketEvents") == []
    expect(ivan.page.locator("#connection-status")).to_have_attribute("data-state", "connected")
