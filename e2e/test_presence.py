"""Presence in real browsers: Alice on the users page sees Bob's dot turn online when Bob opens a
page and offline after he closes it; with "Show my online status" off Bob stays offline.
Screenshot: e2e/screenshots/presence-users.png."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parent / "artifacts"  # git-ignored, beside the others


def bobs_dot(page, username):
    card = page.locator(f'[data-testid="profile-card"][data-username="{username}"]')
    return card.locator('[data-testid^="presence-"]')


def test_a_dot_turns_online_and_offline_and_hides_when_asked(new_user):
    alice = new_user("alice")
    bob = new_user("bob")
    bob.page.close()  # Bob has no page open
    bob_context = bob.page.context

    alice.page.goto("/profiles/")
    dot = bobs_dot(alice.page, bob.username)
    expect(dot).to_have_attribute("data-presence", "offline", timeout=20_000)

    # Bob opens a page: online within 2 s (give the browser some slack).
    bob_page = bob_context.new_page()
    bob_page.goto("/")
    expect(dot).to_have_attribute("data-presence", "online", timeout=5_000)
    expect(dot).to_have_attribute("aria-label", "Online")
    SHOTS.mkdir(exist_ok=True)
    alice.page.screenshot(path=str(SHOTS / "presence-users.png"))

    # He closes it: offline after the close grace and the coalescing window (~5-10 s).
    bob_page.close()
    expect(dot).to_have_attribute("data-presence", "offline", timeout=30_000)

    # "Show my online status" off: he opens a page and still appears offline.
    bob_page = bob_context.new_page()
    bob_page.goto("/")
    expect(dot).to_have_attribute("data-presence", "online", timeout=10_000)
    response = bob_page.request.patch(
        "/api/profiles/me/",
        data={"show_presence": False},
        headers={"X-CSRFToken": bob_page.evaluate("Parley.csrfToken()")},
    )
    assert response.ok, response.text()
    expect(dot).to_have_attribute("data-presence", "offline", timeout=10_000)
    alice.page.reload()
    expect(bobs_dot(alice.page, bob.username)).to_have_attribute("data-presence", "offline")
    bob_page.close()
