"""Personal access tokens end to end (issue 13): made on the "API tokens" page in a real
browser (shown once, copied with the button), used by a bot over HTTP and on the websocket of
the real server (no Origin), and revoked on the page — which closes the bot's socket (4401)."""

import json
import re

import pytest
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


def test_a_token_made_on_the_page_runs_a_bot_until_it_is_revoked_there(new_user, base_url):
    erin = new_user("erin")
    page = erin.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/")
    page.locator("details[data-dropdown] summary").click()
    page.get_by_role("menuitem", name="API tokens").click()
    page.wait_for_url(re.compile(r"/accounts/tokens/$"))
    expect(page.get_by_test_id("token-list-empty")).to_be_visible()

    page.get_by_label("Name").fill("e2e bot")
    page.get_by_label("Expires").select_option("30")
    page.get_by_role("button", name="Create token").click()

    secret_field = page.get_by_test_id("new-token")
    expect(secret_field).to_have_value(re.compile(r"^pat_[A-Za-z0-9_-]{43}$"))
    secret = secret_field.input_value()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("[data-copy-status]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # Listed by name and prefix; a reload shows the secret no more.
    page.goto("/accounts/tokens/")
    expect(page.get_by_test_id("token-row")).to_have_count(1)
    expect(page.get_by_test_id("token-row")).to_contain_text("e2e bot")
    expect(page.get_by_test_id("token-row")).to_contain_text(secret[:12] + "…")
    assert secret not in page.content()

    # A bot: HTTP with Bearer, then the user socket with the token and no Origin.
    me = page.request.get("/api/profiles/me/", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["username"] == erin.username
    with connect(
        ws_url(base_url, "/ws/user/"),
        additional_headers={"Authorization": f"Bearer {secret}"},
        open_timeout=10,
    ) as bot:
        assert json.loads(bot.recv(timeout=10))["type"] == "sync"

        page.get_by_test_id("token-revoke").click()
        page.get_by_role("button", name="Revoke token").click()
        expect(page.get_by_text("was revoked")).to_be_visible()
        expect(page.get_by_test_id("token-list-empty")).to_be_visible()

        with pytest.raises(ConnectionClosed) as closed:
            while True:
                bot.recv(timeout=5)  # frames until the close (within 2 s, well inside this)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    gone = page.request.get("/api/profiles/me/", headers={"Authorization": f"Bearer {secret}"})
    assert gone.status == 401
