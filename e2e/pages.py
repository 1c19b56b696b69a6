"""What several browser tests do on Parley's pages (imported by the e2e test modules)."""

import re
import secrets

from playwright.sync_api import expect

ROOM_URL = re.compile(r"/chat/room/(\d+)/$")


def create_room(page, stem: str = "e2e") -> str:
    """Create a public room through the home page form; returns the room's URL."""
    page.goto("/")
    page.locator("#room-create-form input[name=name]").fill(f"{stem}-{secrets.token_hex(3)}")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url(ROOM_URL)
    return page.url


def wait_connected(page) -> None:
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
