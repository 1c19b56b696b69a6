"""The profile editor in a real browser: an htmx form swapped in place."""

import re

from playwright.sync_api import expect


def test_the_profile_editor_saves_in_place_and_the_nav_shows_the_new_name(new_user):
    dave = new_user("dave")
    page = dave.page
    page.goto("/")
    page.locator("details[data-dropdown] summary").click()
    page.get_by_role("menuitem", name="Edit").click()
    page.wait_for_url(re.compile(r"/profiles/me/edit/$"))
    edit_url = page.url
    # Survives an htmx swap, not a page load; the old form element is marked to tell it
    # apart from the one that replaces it.
    page.evaluate("window.__e2eNoReload = 'still here'")
    page.locator("#profile-form").evaluate("form => { form.dataset.e2eOld = '1'; }")

    page.get_by_label("Display name").fill("Dave the Brave")
    page.get_by_role("button", name="Save profile").click()

    expect(page.get_by_test_id("profile-saved")).to_be_visible()
    expect(page.locator("#profile-form")).not_to_have_attribute("data-e2e-old", "1")
    expect(page.locator("details[data-dropdown] [data-testid=nav-user-name]")).to_have_text(
        "Dave the Brave"
    )
    assert page.url == edit_url
    assert page.evaluate("window.__e2eNoReload") == "still here"

    # Stored for real: a fresh page load shows the new name too.
    page.reload()
    expect(page.get_by_label("Display name")).to_have_value("Dave the Brave")
    expect(page.get_by_test_id("nav-user-name")).to_have_text("Dave the Brave")
