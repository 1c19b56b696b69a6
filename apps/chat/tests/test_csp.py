"""The Content-Security-Policy: on every page, strict, with a fresh nonce; pages that need
nothing it forbids; the report-only switch; the violation report endpoint."""

import json
import logging
import runpy
from html.parser import HTMLParser
from pathlib import Path

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from apps.chat import services
from apps.core.tests.csp_policy import EXPECTED, REPORT_URL, parse_policy

pytestmark = pytest.mark.django_db

HEADER = "Content-Security-Policy"
HEADER_RO = "Content-Security-Policy-Report-Only"
SETTINGS_FILE = Path(django_settings.BASE_DIR) / "project" / "settings.py"


class PageScan(HTMLParser):
    """What a page would need the CSP to allow: inline script, inline style, handlers, eval."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[tuple[str, str | None]] = []
        self.style_nonces: list[str | None] = []  # one per <style> element
        self.htmx_config: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name, value in attrs:
            value = value or ""
            if name == "style":
                self.problems.append(f"<{tag} style={value!r}>")
            elif name.startswith("on") or name.startswith("hx-on"):
                self.problems.append(f"<{tag} {name}=…> (an inline handler)")
            elif value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            elif name in ("hx-vals", "hx-headers", "hx-vars") and value.lstrip().startswith("js:"):
                self.problems.append(f"<{tag} {name}={value!r}> (needs eval)")
            elif name == "hx-trigger" and "[" in value:
                self.problems.append(f"<{tag} hx-trigger={value!r}> (a filter needs eval)")
        if tag == "style":
            self.style_nonces.append(a.get("nonce"))
        if tag == "script":
            if a.get("src"):
                self.scripts.append((a["src"], a.get("nonce")))
            elif a.get("type") not in ("application/json", "text/template"):
                self.problems.append("inline <script>")
        if tag == "meta" and a.get("name") == "htmx-config":
            self.htmx_config = json.loads(a["content"])


OUR_SCRIPTS = ("vendor/htmx.min.js", "vendor/htmx-ext-ws.js", "src/parley.js")


def our_script_nonces(page: PageScan) -> list[str | None]:
    """The nonces on base.html's three scripts (allauth's e-mail page adds two static files of
    its own, which 'self' allows)."""
    return [nonce for src, nonce in page.scripts if src.endswith(OUR_SCRIPTS)]


def scan(html: str) -> PageScan:
    parser = PageScan()
    parser.feed(html)
    return parser


@pytest.fixture
def busy_room(alice, bob, carol, public_room, unlimited):
    """A room with messages by several people without avatars: initials in many colours."""
    for user in (alice, bob, carol):
        services.message_send(room=public_room, author=user, body=f"hello from {user}")
    return public_room


def pages_of(busy_room, private_room) -> list[tuple[str, str]]:
    return [
        ("home", reverse("chat:home")),
        ("room", busy_room.get_absolute_url()),
        ("private room", private_room.get_absolute_url()),
        ("users", reverse("profiles:list")),
        ("profile editor", reverse("profiles:edit")),
        # allauth's own page templates inside our layout
        ("password change", "/accounts/password/change/"),
        ("e-mail addresses", "/accounts/email/"),
        ("log out", "/accounts/logout/"),
    ]


ANONYMOUS_PAGES = [
    ("login", "/accounts/login/"),
    ("signup", "/accounts/signup/"),
    ("password reset", "/accounts/password/reset/"),
    ("password reset sent", "/accounts/password/reset/done/"),
    ("inactive account", "/accounts/inactive/"),
    ("404", "/no-such-page/"),
]


def assert_strict_policy(response, what: str) -> str:
    assert HEADER in response, f"{what}: no {HEADER} header"
    assert HEADER_RO not in response, f"{what}: also sends {HEADER_RO}"
    directives, nonce = parse_policy(response[HEADER])
    if nonce is None:
        # django-csp adds the nonce only to responses whose page used it (fragments, JSON,
        # Django's plain 404 have no <script>): there script-src is 'self' alone, stricter still.
        directives["script-src"].append("nonce")
        directives["style-src"].append("nonce")
    assert directives == EXPECTED, f"{what}: {response[HEADER]}"
    for forbidden in ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"):
        assert forbidden not in response[HEADER].split(), what
    return nonce


def test_every_html_page_sends_the_strict_policy_with_a_nonce_its_scripts_carry(
    alice_client, busy_room, private_room
):
    pages = pages_of(busy_room, private_room)
    nonces = []
    for what, url in pages:
        response = alice_client.get(url)
        assert response.status_code == 200, what
        nonce = assert_strict_policy(response, what)
        assert nonce is not None, what
        page = scan(response.content.decode())
        # The three <script src>: htmx, its websocket extension, parley.js.
        assert our_script_nonces(page) == [nonce] * 3, what
        nonces.append(nonce)
    # A fresh nonce per response (16 random bytes, base64): never reused, never guessable.
    assert len(set(nonces)) == len(nonces)
    assert all(len(n) >= 22 for n in nonces)
    again = alice_client.get(pages[0][1])
    assert parse_policy(again[HEADER])[1] not in nonces


@pytest.mark.parametrize(("what", "url"), ANONYMOUS_PAGES)
def test_logged_out_pages_and_the_404_send_the_policy_too(client, what, url):
    response = client.get(url)
    assert response.status_code == (404 if what == "404" else 200)
    nonce = assert_strict_policy(response, what)
    if what != "404":  # our pages (base.html); Django's plain 404 page has no script
        assert nonce is not None
        assert our_script_nonces(scan(response.content.decode())) == [nonce] * 3


def test_htmx_fragments_redirects_and_the_api_carry_the_policy(alice_client, public_room):
    responses = {
        "room-list fragment": alice_client.get(
            reverse("chat:room_list"), headers={"HX-Request": "true"}
        ),
        "redirect": Client().get(reverse("chat:home")),
        "api": alice_client.get("/api/rooms/"),
        "api 404": alice_client.get("/api/nothing/"),
    }
    for what, response in responses.items():
        assert response.status_code in (200, 302, 404), what
        assert_strict_policy(response, what)


def test_no_page_needs_inline_script_inline_style_handlers_or_eval(
    alice_client, busy_room, private_room
):
    """What the policy would block must not be on any page: the avatar colours used to be 66
    style= attributes, the room-list poll an hx-trigger filter that htmx runs through eval."""
    responses = {what: alice_client.get(url) for what, url in pages_of(busy_room, private_room)}
    anonymous = Client()
    responses.update({what: anonymous.get(url) for what, url in ANONYMOUS_PAGES})
    html_by_page = {what: response.content.decode() for what, response in responses.items()}
    # The one <style> a page may have: the room page's per-viewer rules, with the nonce.
    for what, response in responses.items():
        styles = scan(html_by_page[what]).style_nonces
        if styles:
            _directives, nonce = parse_policy(response[HEADER])
            assert styles == [nonce] and what in ("room", "private room"), what
    htmx_fragments = {
        "room list": reverse("chat:room_list"),
        "history": reverse("chat:room_history", args=[busy_room.pk]) + "?before=99",
    }
    for what, url in htmx_fragments.items():
        html_by_page[what] = alice_client.get(url, headers={"HX-Request": "true"}).content.decode()

    assert "avatar-hue-" in html_by_page["room"]  # initials avatars were rendered
    for what, html in html_by_page.items():
        page = scan(html)
        assert page.problems == [], f"{what}: {page.problems}"


def test_htmx_is_configured_to_need_neither_eval_nor_inline_styles_or_scripts(alice_client):
    page = scan(alice_client.get(reverse("chat:home")).content.decode())
    assert page.htmx_config == {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
    }


# --- PARLEY_CSP_REPORT_ONLY ----------------------------------------------------------------------


def load_settings(monkeypatch, **env) -> dict:
    """project/settings.py evaluated under the given environment, as a server would start."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


@pytest.mark.parametrize("value", [None, "", "0"])
def test_by_default_the_policy_is_enforced(monkeypatch, value):
    monkeypatch.delenv("PARLEY_CSP_REPORT_ONLY", raising=False)
    loaded = (
        load_settings(monkeypatch)
        if value is None
        else load_settings(monkeypatch, PARLEY_CSP_REPORT_ONLY=value)
    )
    assert loaded["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["script-src"]
    assert loaded["CONTENT_SECURITY_POLICY_REPORT_ONLY"] is None


def test_report_only_switch_sends_the_same_policy_as_report_only(
    monkeypatch, settings, alice_client
):
    enforced = alice_client.get(reverse("chat:home"))
    loaded = load_settings(monkeypatch, PARLEY_CSP_REPORT_ONLY="1")
    assert loaded["CONTENT_SECURITY_POLICY"] is None
    settings.CONTENT_SECURITY_POLICY = loaded["CONTENT_SECURITY_POLICY"]
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = loaded["CONTENT_SECURITY_POLICY_REPORT_ONLY"]

    response = alice_client.get(reverse("chat:home"))
    assert HEADER not in response
    directives, nonce = parse_policy(response[HEADER_RO])
    assert directives == parse_policy(enforced[HEADER])[0] == EXPECTED
    assert our_script_nonces(scan(response.content.decode())) == [nonce] * 3


# --- The report endpoint ------------------------------------------------------------------------

LEGACY_REPORT = {
    "csp-report": {
        "document-uri": "http://testserver/chat/room/1/",
        "referrer": "",
        "violated-directive": "script-src-elem",
        "effective-directive": "script-src-elem",
        "original-policy": "default-src 'self'; …",
        "disposition": "enforce",
        "blocked-uri": "inline",
        "line-number": 12,
        "source-file": "http://testserver/chat/room/1/",
        "status-code": 200,
        "script-sample": "",
    }
}


def post_report(client, body, content_type="application/csp-report"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(REPORT_URL, data=data, content_type=content_type)


def csp_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "parley.csp"]


@pytest.fixture
def csrf_client():
    """Browsers send reports without a CSRF token; the endpoint must take them anyway."""
    return Client(enforce_csrf_checks=True)


def test_the_policy_reports_to_our_endpoint(settings):
    assert reverse("csp_report") == settings.PARLEY_CSP_REPORT_URI == REPORT_URL


def test_a_violation_report_is_logged_as_one_warning_line(csrf_client, caplog):
    caplog.set_level(logging.WARNING, logger="parley.csp")
    response = post_report(csrf_client, LEGACY_REPORT)
    assert response.status_code == 204
    lines = csp_lines(caplog)
    assert len(lines) == 1
    assert "directive=script-src-elem" in lines[0]
    assert "blocked=inline" in lines[0]
    assert "document=http://testserver/chat/room/1/" in lines[0]
    assert "line=12" in lines[0]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "parley.csp")


def test_reporting_api_batches_give_one_line_per_violation(csrf_client, caplog):
    caplog.set_level(logging.WARNING, logger="parley.csp")
    body = [
        {
            "type": "csp-violation",
            "url": "http://testserver/",
            "body": {"effectiveDirective": "style-src-attr", "blockedURL": "inline"},
        },
        {"type": "csp-violation", "body": {"effectiveDirective": "img-src", "blockedURL": "x"}},
        {"type": "deprecation", "body": {"message": "not ours"}},
    ]
    response = post_report(csrf_client, body, content_type="application/reports+json")
    assert response.status_code == 204
    lines = csp_lines(caplog)
    assert len(lines) == 2
    assert "directive=style-src-attr" in lines[0]
    assert "directive=img-src" in lines[1]


def test_a_hostile_report_cannot_forge_log_lines_or_flood_one(csrf_client, caplog):
    caplog.set_level(logging.WARNING, logger="parley.csp")
    report = {"csp-report": {"blocked-uri": "x\nCRITICAL forged line\r\x1b[31m" + "y" * 5000}}
    assert post_report(csrf_client, report).status_code == 204
    (line,) = csp_lines(caplog)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert len(line) < 400


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("empty", b""),
        ("not json", b"<html>hello</html>"),
        ("bad utf-8", b'{"csp-report": {"blocked-uri": "\xff\xfe"}}'),
        ("json, not a report", b'{"hello": "world"}'),
        ("a report that is not an object", b'{"csp-report": "inline"}'),
        ("a list of nothing", b"[]"),
        ("a list of other reports", b'[{"type": "deprecation", "body": {}}]'),
        ("a bare number", b"42"),
        ("deeply nested", b"[" * 5_000 + b"]" * 5_000),
    ],
)
def test_garbage_is_a_400_and_logs_nothing(csrf_client, caplog, what, body):
    caplog.set_level(logging.WARNING, logger="parley.csp")
    response = post_report(csrf_client, body)
    assert response.status_code == 400, what
    assert csp_lines(caplog) == []


def test_an_oversized_report_is_refused_with_413(csrf_client, caplog, settings):
    caplog.set_level(logging.WARNING, logger="parley.csp")
    padding = "x" * settings.PARLEY_CSP_REPORT_MAX_BYTES
    response = post_report(csrf_client, {"csp-report": {"blocked-uri": padding}})
    assert response.status_code == 413
    assert csp_lines(caplog) == []


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_accepted(csrf_client, method):
    assert getattr(csrf_client, method)(REPORT_URL).status_code == 405


@pytest.fixture
def frozen_window(monkeypatch):
    """Rate-limit windows are fixed: keep the whole test inside one."""
    from apps.core import ratelimit

    monkeypatch.setattr(ratelimit, "_clock", lambda: 1_800_000_000.0)


def test_a_flood_of_reports_from_one_address_is_rate_limited(frozen_window, caplog):
    from project import csp_report

    caplog.set_level(logging.WARNING, logger="parley.csp")
    count, window = csp_report.RATE
    flood = Client(REMOTE_ADDR="2001:db8:7:7::1")
    statuses = [post_report(flood, LEGACY_REPORT).status_code for _ in range(count)]
    assert statuses == [204] * count
    caplog.clear()

    # The next one, even from another address in the same /64, is refused and logs nothing.
    neighbour = Client(REMOTE_ADDR="2001:db8:7:7::2")
    refused = post_report(neighbour, LEGACY_REPORT)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= window
    assert csp_lines(caplog) == []
    # Other clients still report.
    assert post_report(Client(REMOTE_ADDR="192.0.2.55"), LEGACY_REPORT).status_code == 204
    assert len(csp_lines(caplog)) == 1


def test_a_batch_of_many_violations_logs_a_bounded_number_of_lines(csrf_client, caplog):
    caplog.set_level(logging.WARNING, logger="parley.csp")
    body = [
        {"type": "csp-violation", "body": {"effectiveDirective": "img-src", "blockedURL": f"x{n}"}}
        for n in range(20)
    ]
    response = post_report(csrf_client, body, content_type="application/reports+json")
    assert response.status_code == 204
    lines = csp_lines(caplog)
    assert len(lines) == 3
    assert "blocked=x0" in lines[0]
    assert lines[-1].endswith("(+17 more in this report)")


@pytest.mark.django_db(transaction=True)
async def test_a_large_report_is_refused_before_django_reads_it():
    """The report path has its own small cap in front of Django (project/http_limits.py): a
    declared length over it is answered at once, with no byte of the body read; one that
    streams past it is cut off there, far below the general request cap."""
    from apps.core.tests.asgi_http import asgi_request, http_scope
    from project.asgi import application

    cap = django_settings.PARLEY_CSP_REPORT_MAX_BYTES
    assert cap < django_settings.PARLEY_HTTP_MAX_BODY
    declared = http_scope(
        method="POST",
        path=REPORT_URL,
        headers=[
            (b"content-type", b"application/csp-report"),
            (b"content-length", str(cap + 1).encode()),
        ],
    )
    # No body chunk sent: the answer must not wait for one (Django would).
    communicator = ApplicationCommunicator(application, declared)
    start = await communicator.receive_output(timeout=2)
    assert start["status"] == 413

    streamed = http_scope(
        method="POST", path=REPORT_URL, headers=[(b"content-type", b"application/csp-report")]
    )
    chunks = [b'{"csp-report": {"blocked-uri": "' + b"x" * (cap // 2)] * 3
    response = await asgi_request(application, streamed, chunks)
    assert response["status"] == 413
    # The middleware's answer (it closes the connection), not the view's own 413.
    assert (b"connection", b"close") in response["headers"]
