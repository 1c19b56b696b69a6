"""Search in a real browser: a word typed in the header's box finds the message, the result opens
the room at it (highlighted, in view, focused), newer history loads below it, live messages wait
behind "Jump to latest" until the pages reach the present; "/" focuses the box; a far reply
jump opens the room at the original; and screenshots of the results and the highlighted
message, desktop and phone, to look at."""

import re
import shutil
from pathlib import Path

from pages import wait_connected
from playwright.sync_api import expect
from test_timeline import create_room, seed, send

SHOTS = Path("/work/notes/shots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def seed_with_needle(
    asgi_server, *, room_id: int, username: str, needle_at: int, needle: str = "Zebra"
) -> None:
    """120 messages "history i", the one at ``needle_at`` carrying a rare word."""
    seed(
        asgi_server,
        """
room = Room.objects.get(pk=room_id)
author = User.objects.get(username=username)
for i in range(1, 121):
    body = f"history {i}"
    if i == needle_at:
        body = f"history {i}: the **{needle}-crossing** plan, see below"
    services.message_send(room=room, author=author, body=body)
""",
        room_id=room_id,
        username=username,
        needle_at=needle_at,
        needle=needle,
    )


def seqs(page) -> list[int]:
    return page.locator("#message-list > article").evaluate_all(
        "els => els.map(e => +e.dataset.seq)"
    )


def shot(page, name: str, save_screenshot) -> None:
    path = save_screenshot(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SHOTS / f"{name}.png")


def test_search_from_the_header_opens_the_room_at_the_message(
    new_user, asgi_server, save_screenshot
):
    ann = new_user("ann", viewport=DESKTOP)
    bob = new_user("bob")
    room_url, room_id = create_room(ann.page, "search")
    seed_with_needle(asgi_server, room_id=room_id, username=ann.username, needle_at=30)
    page = ann.page
    page.goto("/")

    box = page.get_by_test_id("search-input")
    box.fill("zebra-CROSS")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search/\?q="))
    results = page.get_by_test_id("search-result")
    expect(results).to_have_count(1)
    expect(results.first.locator("mark")).to_have_text("Zebra-cross")
    expect(results.first.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    expect(page.get_by_test_id("search-input")).to_have_value("zebra-CROSS")
    shot(page, "search-results-desktop", save_screenshot)

    results.first.locator("a").click()
    page.wait_for_url(re.compile(rf"/chat/room/{room_id}/\?around=30#message-\d+$"))
    wait_connected(page)
    target = page.locator("#message-list > article[data-seq='30']")
    expect(target).to_have_class(re.compile(r"\bmessage-target\b"))
    expect(target).to_be_in_viewport()
    expect(target).to_be_focused()
    assert seqs(page) == list(range(5, 56))
    shot(page, "search-target-desktop", save_screenshot)

    # Someone posts meanwhile: not appended after the gap; the pill offers the latest.
    bob.page.goto(room_url)
    wait_connected(bob.page)
    send(bob.page, "live while ann reads the past")
    pill = page.locator("#jump-latest")
    expect(pill).to_be_visible()
    expect(pill).to_have_text(re.compile("New messages"))
    expect(page.locator("#message-list > article", has_text="live while ann")).to_have_count(0)
    # A change to a loaded message applies live meanwhile (Bob reacts to the target).
    target_id = int(target.get_attribute("id").split("-")[1])
    status = bob.page.evaluate(
        """([room, id]) => fetch(`/api/rooms/${room}/messages/${id}/reactions/`, {
            method: "POST",
            credentials: "same-origin",
            headers: {
              "Content-Type": "application/json",
              "X-CSRFToken": document.querySelector("[name=csrfmiddlewaretoken]").value,
            },
            body: JSON.stringify({ emoji: "👍" }),
          }).then(r => r.status)""",
        [room_id, target_id],
    )
    assert status == 201
    expect(target.locator(".reaction[data-emoji='👍'] .reaction-count")).to_have_text("1")
    expect(target).to_have_class(re.compile(r"\bmessage-target\b"))  # still marked
    assert seqs(page) == list(range(5, 56))

    # Newer history loads below, page by page, until the present; then live again.
    page.get_by_test_id("load-newer").click()
    expect(page.locator("#message-list > article[data-seq='105']")).to_have_count(1)
    expect(page.get_by_test_id("load-newer")).to_be_focused()  # keyboard users go on from here
    page.keyboard.press("Enter")
    expect(page.locator("#message-list > article", has_text="live while ann")).to_have_count(1)
    expect(page.get_by_test_id("load-newer")).to_have_count(0)
    assert seqs(page) == list(range(5, 122))
    send(bob.page, "and now it is live")
    expect(page.locator("#message-list > article", has_text="and now it is live")).to_have_count(1)
    assert seqs(page) == [*range(5, 122), 123]  # seq 122 was Bob's reaction

    # "Jump to latest" from a page opened far back opens the latest page.
    page.goto(f"{room_url}?around=10")
    wait_connected(page)
    expect(page.locator("#message-list > article[data-seq='10']")).to_be_focused()
    page.locator("#jump-latest").click()
    page.wait_for_url(re.compile(rf"/chat/room/{room_id}/$"))
    expect(page.locator("#message-list > article", has_text="and now it is live")).to_have_count(1)


def test_slash_focuses_the_search_box_but_not_while_typing(new_user):
    cy = new_user("cy")
    page = cy.page
    room_url, _ = create_room(page, "slash")
    page.goto("/")
    page.locator("body").press("/")
    expect(page.get_by_test_id("search-input")).to_be_focused()
    expect(page.get_by_test_id("search-input")).to_have_value("")

    page.goto(room_url)
    composer = page.locator("#composer-body")
    composer.click()
    composer.press("/")
    expect(composer).to_have_value("/")
    expect(composer).to_be_focused()


def test_a_bad_query_shows_the_error_in_the_form(new_user):
    dee = new_user("dee")
    page = dee.page
    page.goto("/search/?q=has:picture")
    expect(page.get_by_test_id("search-error")).to_contain_text("has:file")
    expect(page.get_by_test_id("search-page-input")).to_have_attribute("aria-invalid", "true")


def test_a_far_reply_jump_opens_the_room_at_the_original(new_user, asgi_server):
    eve = new_user("eve")
    room_url, room_id = create_room(eve.page, "farjump")
    seed(
        asgi_server,
        """
room = Room.objects.get(pk=room_id)
author = User.objects.get(username=username)
first = services.message_send(room=room, author=author, body="the very first").message
for i in range(2, 400):
    services.message_send(room=room, author=author, body=f"filler {i}")
services.message_send(room=room, author=author, body="answering the first", reply_to=first.pk)
""",
        room_id=room_id,
        username=eve.username,
    )
    page = eve.page
    page.goto(room_url)
    wait_connected(page)
    page.locator("#message-list > article", has_text="answering the first").locator(
        ".reply-quote"
    ).click()
    page.wait_for_url(re.compile(rf"/chat/room/{room_id}/\?around=1#message-\d+$"))
    original = page.locator("#message-list > article[data-seq='1']")
    expect(original).to_have_class(re.compile(r"\bmessage-target\b"))
    expect(original).to_be_focused()


def test_screenshots_on_a_phone(new_user, asgi_server, save_screenshot):
    fay = new_user("fay", viewport=PHONE)
    _, room_id = create_room(fay.page, "phone")
    seed_with_needle(
        asgi_server, room_id=room_id, username=fay.username, needle_at=60, needle="Quokka"
    )
    page = fay.page
    page.goto("/search/?q=quokka")
    expect(page.get_by_test_id("search-result")).to_have_count(1)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    shot(page, "search-results-phone", save_screenshot)
    # The header's box is an icon until focused; then it spans the header.
    page.get_by_test_id("search-input").click()
    expect(page.get_by_test_id("search-input")).to_be_focused()
    box = page.get_by_test_id("search-input").bounding_box()
    assert box is not None and box["width"] > 300
    page.keyboard.type("kangaroo")
    page.screenshot(path=str(SHOTS / "search-box-phone.png"))
    page.keyboard.press("Escape")
    page.get_by_test_id("search-result").locator("a").click()
    wait_connected(page)
    target = page.locator("#message-list > article[data-seq='60']")
    expect(target).to_be_in_viewport()
    shot(page, "search-target-phone", save_screenshot)
