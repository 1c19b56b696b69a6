"""Screenshots of the main pages at desktop and phone sizes, into e2e/artifacts/, plus the
layout checks a person would make looking at them."""

import re
import secrets

import pytest
from playwright.sync_api import expect

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def assert_no_horizontal_scroll(page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_room_page_and_profile_editor_fit_the_screen(new_user, save_screenshot, size):
    viewport = PHONE if size == "phone" else DESKTOP
    user = new_user("grace", viewport=viewport)
    page = user.page

    page.goto("/")
    page.locator("#room-create-form input[name=name]").fill(f"layout-{secrets.token_hex(3)}")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url(re.compile(r"/chat/room/\d+/$"))
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    for text in ["Good morning!", "A longer message that has to wrap " * 4, "Bye"]:
        page.locator("#composer-body").fill(text)
        page.locator("#composer-body").press("Enter")
        expect(page.locator("#composer-body")).to_have_value("")
    expect(page.locator("#message-list article")).to_have_count(3)
    save_screenshot(page, f"room-{size}")
    assert_no_horizontal_scroll(page)
    # The composer is on screen without scrolling the page.
    box = page.locator("#composer-body").bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= viewport["height"]

    page.goto("/profiles/me/edit/")
    save_screenshot(page, f"profile-edit-{size}")
    assert_no_horizontal_scroll(page)

    page.goto("/")
    save_screenshot(page, f"home-{size}")
    assert_no_horizontal_scroll(page)
