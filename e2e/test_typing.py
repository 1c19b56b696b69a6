"""Typing indicators in two real browsers (issue 11 B): Bob types, Alice sees "Bob is typing…"
within 1.5 s; it clears at once when his message arrives and within 6 s after he stops typing;
Bob never sees himself. A screenshot of the line into /work/notes/shots/ (and e2e/artifacts/)."""

import os
import time
from pathlib import Path

from pages import create_room, wait_connected
from playwright.sync_api import expect

SHOTS_DIR = Path(os.environ.get("PARLEY_SHOTS_DIR", "/work/notes/shots"))


def shoot(page, name: str) -> None:
    for folder in (SHOTS_DIR, Path(__file__).resolve().parent / "artifacts"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        page.screenshot(path=str(folder / f"{name}.png"))


def test_the_typing_line_appears_for_others_and_clears_on_send_and_on_stop(new_user):
    alice = new_user("alice", viewport={"width": 1000, "height": 700})
    bob = new_user("bob")
    room_url = create_room(alice.page, "typing")
    bob.page.goto(room_url)
    wait_connected(alice.page)
    wait_connected(bob.page)
    line, own_line = alice.page.get_by_test_id("typing"), bob.page.get_by_test_id("typing")
    expect(line).to_have_attribute("aria-live", "polite")
    expect(line).to_have_text("")
    composer = bob.page.locator("#composer-body")

    # Bob types: Alice sees him within 1.5 s; Bob does not see himself.
    composer.press_sequentially("hello the", delay=30)
    expect(line).to_have_text(f"{bob.username} is typing…", timeout=1500)
    shoot(alice.page, "typing-line")
    expect(own_line).to_have_text("")

    # He sends: the line clears as his message arrives (the article and the line together).
    composer.press_sequentially("re", delay=30)
    composer.press("Enter")
    message = alice.page.locator("#message-list > article", has_text="hello there")
    expect(message).to_be_visible(timeout=3000)
    expect(line).to_have_text("", timeout=300)

    # He types again and stops: gone within 6 s of his last keystroke.
    composer.press_sequentially("one more", delay=30)
    expect(line).to_have_text(f"{bob.username} is typing…", timeout=1500)
    stopped = time.monotonic()
    expect(line).to_have_text("", timeout=6000)
    assert time.monotonic() - stopped <= 6.0
    expect(own_line).to_have_text("")

    # Emptying the composer clears it at once (the stop frame), without the expiry.
    composer.fill("")
    composer.press_sequentially("x", delay=30)
    expect(line).to_have_text(f"{bob.username} is typing…", timeout=1500)
    composer.press("Backspace")
    expect(line).to_have_text("", timeout=1500)


def test_two_and_three_typers_read_as_a_list_then_several(new_user):
    alice = new_user("alice")
    room_url = create_room(alice.page, "typing3")
    others = [new_user(stem) for stem in ("bob", "carol", "dan")]
    for other in others:
        other.page.goto(room_url)
        wait_connected(other.page)
    wait_connected(alice.page)
    line = alice.page.get_by_test_id("typing")
    others[0].page.locator("#composer-body").press_sequentially("hi", delay=20)
    expect(line).to_have_text(f"{others[0].username} is typing…", timeout=1500)
    others[1].page.locator("#composer-body").press_sequentially("hi", delay=20)
    expect(line).to_have_text(
        f"{others[0].username} and {others[1].username} are typing…", timeout=2500
    )
    others[2].page.locator("#composer-body").press_sequentially("hi", delay=20)
    expect(line).to_have_text("Several people are typing…", timeout=2500)
    shoot(alice.page, "typing-line-several")
