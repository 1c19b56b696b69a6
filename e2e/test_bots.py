"""Bots and incoming webhooks end to end (issue 13), in a real Chromium against the real ASGI
server: a room's owner makes a webhook in the room's settings (its URL shown once), a script
POSTs to it (urllib, like curl), and the message appears live in the open room, marked BOT.
The Bots page makes a bot and a token for it. Screenshots (desktop and a 390 px phone) go to
/work/notes/shots/ when that folder exists."""

import json
import re
import urllib.request
from pathlib import Path

import pytest
from pages import create_room, wait_connected
from playwright.sync_api import expect

SHOTS = Path("/work/notes/shots")
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


def _shot(page, name: str) -> None:
    if SHOTS.is_dir():
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our server)
        return response.status, json.loads(response.read())


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_webhook_made_in_settings_posts_live_into_the_room_marked_bot(new_user, size):
    owner = new_user("hooks", viewport=VIEWPORTS[size])
    page = owner.page
    room_url = create_room(page, "hooks")

    page.goto(room_url + "settings/")
    section = page.get_by_test_id("webhooks")
    section.get_by_label("Webhook name").fill("Deploys")
    section.get_by_role("button", name="Create webhook").click()
    url_field = page.get_by_test_id("webhook-url")
    expect(url_field).to_have_value(re.compile(r"^http://[^/]+/hooks/hook_[A-Za-z0-9_-]{43}/$"))
    hook_url = url_field.input_value()
    expect(page.get_by_test_id("webhook-row")).to_contain_text("Deploys")
    page.get_by_test_id("webhooks").scroll_into_view_if_needed()
    _shot(page, f"webhook-settings-{size}")
    page.goto(room_url + "settings/")
    assert hook_url not in page.content()  # shown once

    page.goto(room_url)
    wait_connected(page)
    status, body = _post(hook_url, {"text": "deploy done :rocket:"})
    assert status == 200 and body["ok"] is True

    article = page.locator(f"#message-{body['message']}")
    expect(article).to_contain_text("deploy done")
    expect(article.locator(".message-author")).to_have_text("Deploys")
    expect(article.get_by_test_id("bot-badge")).to_have_text("BOT")
    expect(article.get_by_test_id("bot-badge")).to_be_visible()
    _shot(page, f"bot-message-{size}")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_bots_page_makes_a_bot_and_its_token(new_user, size):
    person = new_user("botmaker", viewport=VIEWPORTS[size])
    page = person.page
    page.goto("/")
    page.locator("details[data-dropdown] summary").click()
    page.get_by_role("menuitem", name="Bots").click()
    page.wait_for_url(re.compile(r"/profiles/bots/$"))

    page.get_by_label("Name", exact=True).fill("Greeter")
    page.get_by_role("button", name="Create bot").click()
    page.wait_for_url(re.compile(r"/profiles/bots/\d+/$"))
    expect(page.get_by_test_id("bot-title")).to_contain_text("Greeter")
    expect(page.get_by_test_id("bot-title").get_by_test_id("bot-badge")).to_be_visible()

    page.locator("#bot-token-name").fill("CI")
    page.get_by_test_id("bot-token-create").click()
    secret = page.get_by_test_id("new-token").input_value()
    assert re.fullmatch(r"pat_[A-Za-z0-9_-]{43}", secret)
    me = page.request.get("/api/profiles/me/", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["is_bot"] is True and me.json()["name"] == "Greeter"

    page.goto("/profiles/bots/")
    expect(page.get_by_test_id("bot-row")).to_contain_text("greeter-bot")
    _shot(page, f"bots-page-{size}")
