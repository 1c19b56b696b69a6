"""Private conversations in real browsers: started from the user list, closed to others."""

import re

from playwright.sync_api import expect

ROOM_URL = re.compile(r"/chat/room/(\d+)/$")


def test_a_private_conversation_started_from_the_user_list_works_and_stays_private(new_user):
    erin = new_user("erin")
    frank = new_user("frank")
    mallory = new_user("mallory")

    erin.page.goto("/profiles/")
    card = erin.page.locator(f'[data-testid=profile-card][data-username="{frank.username}"]')
    card.get_by_role("button", name="Message").click()
    erin.page.wait_for_url(ROOM_URL)
    room_url = erin.page.url

    # Frank finds the conversation in his sidebar, under "Direct messages".
    frank.page.goto("/")
    frank.page.locator("#sidebar-nav a[data-kind=dm]").first.click()
    frank.page.wait_for_url(room_url)

    for page in (erin.page, frank.page):
        expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    erin.page.locator("#composer-body").fill("Just between us")
    erin.page.locator("#composer-body").press("Enter")
    expect(frank.page.locator("#message-list article", has_text="Just between us")).to_have_count(1)
    frank.page.locator("#composer-body").fill("Agreed")
    frank.page.locator("#composer-body").press("Enter")
    expect(erin.page.locator("#message-list article", has_text="Agreed")).to_have_count(1)

    # A third user can neither open it nor see it listed.
    response = mallory.page.goto(room_url)
    assert response is not None
    assert response.status == 404
    mallory.page.goto("/")
    expect(mallory.page.get_by_test_id("sidebar")).to_be_visible()
    expect(mallory.page.locator("#sidebar-nav a[data-kind=dm]")).to_have_count(0)
