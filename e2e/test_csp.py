"""The Content-Security-Policy on real pages from the real ASGI server, in Chromium: the header
is there, the pages work under it (the autouse `csp_violations` fixture fails any test whose
pages break it), and what it exists for — an injected inline script or style — is blocked and
reported to our endpoint."""

import re
import secrets
import time

import pytest
from playwright.sync_api import expect

from apps.core.tests.csp_policy import EXPECTED, parse_policy

ROOM_URL = re.compile(r"/chat/room/(\d+)/$")


def assert_policy_and_nonce(page, url: str) -> str:
    response = page.goto(url)
    assert response is not None and response.ok, url
    header = response.headers.get("content-security-policy")
    assert header, f"{url}: no Content-Security-Policy header"
    assert "content-security-policy-report-only" not in response.headers
    directives, nonce = parse_policy(header)
    assert directives == EXPECTED, f"{url}: {header}"
    # The browser hides a nonce from getAttribute() but keeps it in .nonce.
    script_nonces = page.eval_on_selector_all("script[src]", "els => els.map(e => e.nonce)")
    # htmx, its websocket extension, parley.js (and room.js on a room page)
    expected = 4 if ROOM_URL.search(url) else 3
    assert script_nonces == [nonce] * expected, url
    # htmx took its configuration from the meta tag: no eval, no injected <style>.
    assert page.evaluate("[htmx.config.allowEval, htmx.config.includeIndicatorStyles]") == [
        False,
        False,
    ]
    return nonce


def create_room(page, stem: str) -> str:
    page.goto("/")
    page.locator("#room-create-form input[name=name]").fill(f"{stem}-{secrets.token_hex(3)}")
    page.get_by_role("button", name="Create room").click()
    page.wait_for_url(ROOM_URL)
    return page.url


# Each test signs up at most one user: the whole e2e suite shares allauth's per-address signup
# limit (20 a minute), and every browser here comes from 127.0.0.1.


def test_real_pages_send_the_policy_with_a_fresh_nonce_per_response(new_user, new_context):
    hana = new_user("hana")
    room_url = create_room(hana.page, "csp")
    nonces = [
        assert_policy_and_nonce(hana.page, url)
        for url in ("/", room_url, "/profiles/", "/profiles/me/edit/", "/")
    ]
    anonymous = new_context().new_page()
    nonces += [assert_policy_and_nonce(anonymous, url) for url in ("/accounts/login/",) * 2]
    nonces.append(assert_policy_and_nonce(anonymous, "/accounts/signup/"))
    assert len(set(nonces)) == len(nonces)


def test_the_room_works_under_the_policy_websocket_included(new_user):
    """connect-src 'self' must cover the same-origin ws:// socket (CSP3): a blocked socket
    would never reach "connected", and the autouse fixture would report the violation."""
    ivan = new_user("ivan")
    room_url = create_room(ivan.page, "csp-room")
    other_tab = ivan.context.new_page()  # a second socket in the room
    other_tab.goto(room_url)
    for page in (ivan.page, other_tab):
        expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")

    ivan.page.locator("#composer-body").fill("Strict but friendly")
    ivan.page.locator("#composer-body").press("Enter")
    expect(
        other_tab.locator("#message-list article", has_text="Strict but friendly")
    ).to_have_count(1)
    expect(ivan.page.locator("#message-list article.is-mine")).to_have_count(1)
    expect(ivan.page.locator("#composer-body")).to_have_value("")
    # Initials avatars get their colour from a class; the stylesheet (not style=) paints it.
    avatar = other_tab.locator("#message-list article span[aria-hidden=true]").first
    expect(avatar).to_have_class(re.compile(r"\bavatar-hue-\d+\b"))
    background = avatar.evaluate("el => getComputedStyle(el).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background


def test_the_directory_never_polls_and_follows_the_users_stream(new_user):
    """The home page's room list used a 30 s poll (an hx-trigger filter htmx evaluates with
    eval()). Now nothing polls: the list is fetched again when the user's stream says the
    directory changed. The page's clock is Playwright's, so minutes pass without waiting."""
    kate = new_user("kate")
    page = kate.page
    page.clock.install()
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-stream", "live")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.url.endswith("/rooms/") else None)
    page.clock.run_for("02:05")
    page.evaluate("() => fetch('/accounts/login/')")  # a round trip: any poll would be sent
    assert requests == []

    # A room created in another tab: the "directory" frame brings the list again.
    other_tab = kate.context.new_page()
    new_room = create_room(other_tab, "listed")
    room_name = other_tab.get_by_test_id("room-title").inner_text().removeprefix("# ")
    room_list = page.locator("#room-list")
    expect(room_list).to_contain_text(room_name)
    assert requests, "the directory was not fetched again"
    link = room_list.get_by_role("link", name=re.compile(re.escape(room_name)))
    expect(link).to_have_attribute("href", re.compile(re.escape(ROOM_URL.search(new_room)[0])))


def test_the_nav_dropdown_and_the_profile_editor_work_under_the_policy(new_user):
    mia = new_user("mia")
    page = mia.page
    page.goto("/profiles/")
    summary = page.locator("details[data-dropdown] summary")
    summary.click()
    expect(page.get_by_role("menuitem", name="Edit")).to_be_visible()
    page.keyboard.press("Escape")  # parley.js closes it
    expect(page.get_by_role("menuitem", name="Edit")).to_be_hidden()
    summary.click()
    page.get_by_role("menuitem", name="Edit").click()
    page.wait_for_url(re.compile(r"/profiles/me/edit/$"))

    page.get_by_label("Display name").fill("Mia Strict")
    page.get_by_role("button", name="Save profile").click()  # an htmx multipart post
    expect(page.get_by_test_id("profile-saved")).to_be_visible()
    expect(page.get_by_test_id("nav-user-name")).to_have_text("Mia Strict")  # out of band

    # allauth's own pages in our layout (the e-mail page runs allauth's scripts): the autouse
    # fixture fails the test on any violation they cause.
    for url in ("/accounts/email/", "/accounts/password/change/"):
        response = page.goto(url)
        assert response is not None and response.ok, url
        assert "content-security-policy" in response.headers


def _server_log_lines(asgi_server, since: int) -> list[str]:
    return asgi_server.log_path.read_bytes()[since:].decode(errors="replace").splitlines()


def wait_until(page, condition, what: str, timeout: float = 10.0):
    """Wait for a condition on the Python side (events the browser sent us), letting
    Playwright dispatch them meanwhile."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        page.wait_for_timeout(50)
    return result


def test_an_injected_inline_script_and_style_are_blocked_and_reported(
    new_context, csp_violations, asgi_server
):
    """What the policy is for: markup that slipped into a page (as a stored XSS would) does not
    run. The real server's response is rewritten on its way to the browser, headers kept."""
    page = new_context().new_page()
    marker = secrets.token_hex(4)

    def inject(route):
        response = route.fetch()
        html = response.text().replace(
            "</main>",
            f'<script>window.__injected = "{marker}"</script>'
            f'<p id="injected" style="display: none">visible {marker}</p>'
            f'<img src="https://evil.example/{marker}.png" alt=""></main>',
        )
        route.fulfill(response=response, body=html)

    page.route("**/accounts/login/", inject)
    log_offset = asgi_server.log_path.stat().st_size
    page.goto("/accounts/login/")

    assert page.evaluate("window.__injected") is None  # the script never ran
    expect(page.locator("#injected")).to_be_visible()  # its style= was ignored
    assert page.evaluate("typeof htmx") == "object"  # our own scripts did run

    # The autouse fixture saw every violation, from the page's listener and from the console:
    # the same recorder fails any other test of the suite that has one.
    def all_seen() -> bool:
        seen = "\n".join(csp_violations.seen)
        return all(
            f"securitypolicyviolation on {asgi_server.url}/accounts/login/: {d}" in seen
            for d in ("script-src-elem", "style-src-attr", "img-src")
        ) and ("console" in seen and "Content Security Policy" in seen)

    wait_until(page, all_seen, "the three violations to be recorded")
    csp_violations.take()  # provoked on purpose: this test passes

    # The browser also POSTed them to /csp-report/, which logged one warning line per report.
    def reported() -> list[str]:
        lines = [
            line
            for line in _server_log_lines(asgi_server, log_offset)
            if "CSP violation:" in line and "/accounts/login/" in line
        ]
        kinds = [
            any("directive=script-src-elem" in ln and "blocked=inline" in ln for ln in lines),
            any("directive=style-src-attr" in ln for ln in lines),
            any(f"evil.example/{marker}" in ln for ln in lines),
        ]
        return lines if all(kinds) else []

    wait_until(page, reported, "the server to log the three reports")


def test_the_fixture_also_catches_violations_made_by_page_scripts(new_context, csp_violations):
    """A script of ours that added an inline <script>, set a style attribute or used eval
    would fail the suite too: here the page's own JavaScript context does all three."""
    page = new_context().new_page()
    page.goto("/accounts/login/")
    page.evaluate(
        """() => {
          const s = document.createElement("script");
          s.textContent = "window.__inlineRan = 1";
          document.body.append(s);
          document.body.setAttribute("style", "outline: 1px solid red");
          try { setTimeout("window.__evalRan = 1"); } catch (e) {}
        }"""
    )

    def all_seen() -> bool:
        seen = "\n".join(csp_violations.seen)
        return all(d in seen for d in ("script-src-elem", "style-src-attr", "script-src "))

    wait_until(page, all_seen, "the three violations to be recorded")
    csp_violations.take()
    assert page.evaluate("[window.__inlineRan, window.__evalRan]") == [None, None]


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_render_under_the_policy_from_our_own_origin(
    page, base_url, path, csp_violations
):
    """Swagger UI and Redoc (issue 13) from the sidecar's static files, under the policy: the
    autouse fixture fails the test on any CSP violation, and nothing is fetched from elsewhere.
    (Redoc's one exception, its "API docs by Redocly" logo from cdn.redoc.ly, is refused by
    img-src: Redoc then leaves it out. That refusal is asserted, then forgiven.)"""
    requests = []
    page.on("request", lambda request: requests.append(request.url))

    response = page.goto(path)

    assert response is not None and response.ok
    if path == "/api/docs/":
        # The operation list, rendered from /api/schema/ by Swagger UI's own scripts.
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        expect(page.locator(".opblock")).not_to_have_count(0)
        expect(
            page.locator(".opblock-summary-description", has_text="Send a message")
        ).to_have_count(1)
    else:
        expect(page.get_by_text("Send a message").first).to_be_attached()
    page.wait_for_load_state("networkidle")
    ours = (base_url, f"blob:{base_url}")  # Redoc's search runs in a worker made from a blob
    elsewhere = [url for url in requests if not url.startswith(ours)]
    if path == "/api/redoc/":
        assert elsewhere in ([], ["https://cdn.redoc.ly/redoc/logo-mini.svg"]), elsewhere
        refused = csp_violations.take()
        assert refused and all("img-src" in v and "cdn.redoc.ly" in v for v in refused), refused
    else:
        assert not elsewhere, elsewhere
