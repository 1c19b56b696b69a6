"""The sidebar and the user's "what's new" state in real browsers: unread badges that appear and
clear in every tab, the title count, the unread divider and "mark as unread", mentions
(autocompleted, highlighted), notifications, private groups, a removed member's room closing,
the quick switcher and the phone drawer; screenshots into /work/notes/shots/ (and
e2e/artifacts/) to look at."""

import json
import os
import re
import secrets
from pathlib import Path

import pages
from pages import ROOM_URL, wait_connected
from playwright.sync_api import expect

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 780}
SHOTS_DIR = Path(os.environ.get("PARLEY_SHOTS_DIR", "/work/notes/shots"))

SEED_PRELUDE = """
import json
from django.contrib.auth import get_user_model
from apps.chat import services
from apps.chat.models import Membership, Message, Room
from apps.core import ratelimit
ratelimit.hit = lambda **kwargs: None  # bulk data for a test: counted nowhere
User = get_user_model()
def user(name):
    return User.objects.get(username=name)
def say(room, author, body):
    return services.message_send(room=room, author=user(author), body=body).message
"""


def seed(asgi_server, code: str, **values) -> dict:
    """Run ``code`` in the server's Django shell with ``values`` bound; it may set ``out``
    (a dict), which comes back."""
    bindings = "".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items())
    script = SEED_PRELUDE + bindings + "out = {}\n" + code + "\nprint('OUT=' + json.dumps(out))\n"
    printed = asgi_server.django(script)
    line = next(line for line in printed.splitlines()[::-1] if line.startswith("OUT="))
    return json.loads(line[len("OUT=") :])


def shoot(page, name: str, *, full_page: bool = False) -> Path:
    """A screenshot into the notes' shots folder (and e2e/artifacts/ beside the others)."""
    paths = []
    for folder in (SHOTS_DIR, Path(__file__).resolve().parent / "artifacts"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        paths.append(path)
    return paths[0]


def wait_until(page, expression: str, timeout_ms: int = 10_000) -> None:
    """Poll ``expression`` in the page (wait_for_function would eval it, which the CSP
    forbids)."""
    for _ in range(timeout_ms // 100):
        if page.evaluate(f"() => !!({expression})"):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never true: {expression}")


def badge(page, room_id: int, kind: str = "unread"):
    return page.get_by_test_id(f"{kind}-{room_id}")


def room_id_of(url: str) -> int:
    return int(ROOM_URL.search(url)[1])


def stream_open(page) -> None:
    """The page's socket is up and its first "sync" is in (the counts are the server's)."""
    expect(page.locator("body")).to_have_attribute("data-stream", "live")


def send(page, text: str) -> None:
    composer = page.locator("#composer-body")
    composer.fill(text)
    composer.press("Enter")
    expect(composer).to_have_value("")
    expect(page.locator("#pending-list > article")).to_have_count(0)


def article(page, text: str):
    return page.locator("#message-list > article", has_text=text)


# --- Screenshots: the sidebar with badges (desktop), the phone drawer, a mention, the divider ---
SCREENSHOT_SEED = """
me, bob, carol = user(me_name), user(bob_name), user(carol_name)
for u, name in ((me, "Alice Martin"), (bob, "Bob Chen"), (carol, "Carol Diaz")):
    u.profile.display_name = name
    u.profile.save()
suffix = tag
general = services.room_create(name=f"general-{suffix}", creator=bob, topic="Company-wide chatter")
design = services.room_create(name=f"design-{suffix}", creator=carol)
random_ = services.room_create(name=f"random-{suffix}", creator=bob)
releases = services.room_create(name=f"releases-{suffix}", creator=me)
for room in (general, design, random_):
    services.room_join(room=room, user=me)
services.room_join(room=design, user=bob)
services.membership_set_notify(room=random_, user=me, notify="none")
group = services.room_create(name=f"launch-{suffix}", creator=carol, private=True,
                             members=[me.username, bob.username])
dm_bob, _ = services.dm_get_or_create(user=bob, other=me)
dm_carol, _ = services.dm_get_or_create(user=carol, other=me)
say(general, me_name, "Morning all! Standup in 10.")
for body in ("Morning! The **release notes** draft is in the shared folder.",
             "Two things before we ship:\\n\\n1. the `--dry-run` flag\\n2. a typo in the intro",
             "I'll take the typo.",
             "Thanks! I'll look at the flag after lunch."):
    say(general, bob_name if "I'll" not in body else carol_name, body)
say(design, carol_name, f"@{me_name} can you check the new icons?")
for i in range(4):
    say(design, bob_name, f"icon set v{i + 2} uploaded")
for i in range(12):
    say(random_, bob_name, f"random thought {i}")
say(group, carol_name, "Launch checklist is up, please add yours")
say(group, bob_name, "Done, added the press kit")
say(dm_bob, bob_name, "Got a minute for the deploy?")
say(dm_carol, me_name, "See you tomorrow")
out.update(general=general.pk, design=design.pk, random=random_.pk, releases=releases.pk,
           group=group.pk, dm_bob=dm_bob.pk, dm_carol=dm_carol.pk)
"""


def test_screenshots_of_the_sidebar_drawer_mention_and_divider(new_user, asgi_server):
    alice = new_user("alice", viewport=DESKTOP, locale="en-US", timezone_id="UTC")
    bob = new_user("bob")
    carol = new_user("carol")
    ids = seed(
        asgi_server,
        SCREENSHOT_SEED,
        me_name=alice.username,
        bob_name=bob.username,
        carol_name=carol.username,
        tag=secrets.token_hex(2),
    )
    page = alice.page
    page.goto("/")
    stream_open(page)
    # Badges from the database at render, then from the stream's sync: the same numbers.
    expect(badge(page, ids["general"])).to_have_text("4")
    expect(badge(page, ids["design"])).to_have_text("5")
    expect(badge(page, ids["design"], "mentions")).to_have_text("@1")
    expect(badge(page, ids["random"])).to_have_text("")  # muted: a dot
    expect(page.get_by_test_id(f"room-link-{ids['random']}")).to_have_attribute("data-dot", "")
    expect(badge(page, ids["releases"])).to_have_text("")
    expect(badge(page, ids["group"])).to_have_text("2")
    expect(badge(page, ids["dm_bob"])).to_have_text("1")
    expect(badge(page, ids["dm_carol"])).to_have_text("")
    expect(page).to_have_title(re.compile(r"^\(12\) "))  # 4 + 5 + 2 + 1, not the muted 12
    shoot(page, "sidebar-desktop-home")

    # The room with the unread divider before the first unread message (Bob's, not mine).
    page.goto(f"/chat/room/{ids['general']}/")
    wait_connected(page)
    divider = page.get_by_test_id("unread-divider")
    expect(divider).to_have_count(1)
    expect(article(page, "release notes").get_by_test_id("unread-divider")).to_have_count(1)
    expect(page.get_by_test_id(f"room-link-{ids['general']}")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.get_by_test_id("room-topic")).to_have_text("Company-wide chatter")
    # Everything new is in view in a focused tab: read, the divider stays where it was.
    expect(badge(page, ids["general"])).to_have_text("", timeout=3000)
    expect(page).to_have_title(re.compile(r"^\(8\) "))
    expect(divider).to_have_count(1)
    shoot(page, "room-unread-divider")

    # A mention of the viewer, highlighted more strongly than someone else's.
    page.goto(f"/chat/room/{ids['design']}/")
    wait_connected(page)
    mine = page.locator(f'#message-list [data-mention="{user_id(page)}"]')
    expect(mine).to_have_count(1)
    strong = mine.evaluate("el => getComputedStyle(el).backgroundColor")
    assert strong not in ("rgba(0, 0, 0, 0)", "transparent"), strong
    shoot(page, "room-mention")

    # The phone: the sidebar is a drawer behind the menu button.
    phone = alice.context.new_page()
    phone.set_viewport_size(PHONE)
    phone.goto(f"/chat/room/{ids['general']}/")
    wait_connected(phone)
    expect(phone.locator("#sidebar")).to_be_hidden()
    shoot(phone, "phone-room")
    phone.get_by_test_id("sidebar-open").click()
    expect(phone.locator("#sidebar")).to_be_visible()
    expect(phone.locator("#sidebar-nav a[aria-current=page]")).to_be_focused()
    shoot(phone, "phone-drawer")
    # Focus stays in the drawer: Tab from its last control comes back to its first.
    for _ in range(30):
        phone.keyboard.press("Tab")
        inside = phone.evaluate(
            "document.getElementById('sidebar').contains(document.activeElement)"
        )
        assert inside
    phone.keyboard.press("Escape")
    expect(phone.locator("#sidebar")).to_be_hidden()
    expect(phone.get_by_test_id("sidebar-open")).to_be_focused()
    for path in ("/", f"/chat/room/{ids['group']}/", f"/chat/room/{ids['group']}/settings/"):
        phone.goto(path)
        overflow = phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
    shoot(phone, "phone-settings")


def user_id(page) -> str:
    return page.locator("body").get_attribute("data-user")


# --- Unread: two tabs of one user, and a second user writing -----------------------------------
def join(asgi_server, room_id: int, *usernames: str) -> None:
    seed(
        asgi_server,
        "room = Room.objects.get(pk=room_id)\n"
        "for name in names:\n"
        "    services.room_join(room=room, user=user(name))\n",
        room_id=room_id,
        names=list(usernames),
    )


def favicon(page) -> str:
    return page.locator("link#favicon").get_attribute("href") or ""


def test_an_unread_badge_appears_and_clears_in_both_tabs_with_the_title(new_user, asgi_server):
    bob = new_user("bob")
    alice = new_user("alice")
    room_url = pages.create_room(bob.page, "unread")
    rid = room_id_of(room_url)
    join(asgi_server, rid, alice.username)
    home, profiles = alice.page, alice.context.new_page()
    home.goto("/")
    profiles.goto("/profiles/")
    for tab in (home, profiles):
        stream_open(tab)
        expect(badge(tab, rid)).to_have_text("")
        expect(tab).not_to_have_title(re.compile(r"^\("))
    wait_connected(bob.page)
    send(bob.page, "anyone there?")
    send(bob.page, "hello?")
    for tab in (home, profiles):
        expect(badge(tab, rid)).to_have_text("2")
        expect(tab.get_by_test_id(f"room-link-{rid}")).to_have_attribute("data-unread", "")
        expect(tab).to_have_title(re.compile(r"^\(2\) "))
        assert favicon(tab).endswith("favicon-unread.svg")
    # Alice opens the room in one tab: reading it there clears the badge everywhere.
    home.bring_to_front()
    home.get_by_test_id(f"room-link-{rid}").click()
    home.wait_for_url(room_url)
    wait_connected(home)
    for tab in (home, profiles):
        expect(badge(tab, rid)).to_have_text("", timeout=3000)
        expect(tab).not_to_have_title(re.compile(r"^\("), timeout=3000)
        assert favicon(tab).endswith("favicon.svg")
    # A message while she is looking: read as it comes (the server reads it for the focused
    # page); the other tab's badge clears within 2 s (the pointers are written once a second).
    send(bob.page, "welcome back")
    expect(article(home, "welcome back")).to_be_visible()
    expect(badge(profiles, rid)).to_have_text("", timeout=2000)
    expect(badge(home, rid)).to_have_text("")
    # A fresh page agrees with the live one.
    fresh = alice.context.new_page()
    fresh.goto("/profiles/")
    expect(badge(fresh, rid)).to_have_text("")


def test_mark_as_unread_from_here_brings_the_badge_back_and_pauses_auto_read(new_user, asgi_server):
    bob = new_user("bob")
    alice = new_user("alice")
    room_url = pages.create_room(bob.page, "mark")
    rid = room_id_of(room_url)
    join(asgi_server, rid, alice.username)
    # History Alice has read (enough to scroll), then three new messages.
    seed(
        asgi_server,
        "room = Room.objects.get(pk=room_id)\n"
        "for i in range(40):\n"
        "    say(room, bob_name, f'old {i}')\n"
        "services.room_mark_read(room=room, user=user(me), seq=10**6)\n",
        room_id=rid,
        bob_name=bob.username,
        me=alice.username,
    )
    wait_connected(bob.page)
    for text in ("first", "second", "third"):
        send(bob.page, text)
    other = alice.context.new_page()
    other.goto("/profiles/")
    stream_open(other)
    expect(badge(other, rid)).to_have_text("3")
    page = alice.page
    page.bring_to_front()
    page.goto(room_url)
    wait_connected(page)
    expect(article(page, "first").get_by_test_id("unread-divider")).to_have_count(1)
    expect(badge(other, rid)).to_have_text("", timeout=3000)  # read where she looks

    second = article(page, "second")
    second.hover()
    second.locator(".message-actions [data-action=unread]").click()
    expect(second.get_by_test_id("unread-divider")).to_have_count(1)
    expect(page.get_by_test_id("unread-divider")).to_have_count(1)
    expect(badge(other, rid)).to_have_text("2")
    expect(badge(page, rid)).to_have_text("2")
    # Auto-read waits: the badge stays although the newest message is in view.
    page.wait_for_timeout(1000)
    expect(badge(other, rid)).to_have_text("2")
    # Scrolling away and back to the bottom reads again.
    scroller = page.locator("#message-scroller")
    scroller.evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_timeout(300)
    expect(badge(other, rid)).to_have_text("2")
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(badge(other, rid)).to_have_text("", timeout=3000)
    expect(page).not_to_have_title(re.compile(r"^\("))


# --- Mentions ---------------------------------------------------------------------------------
def test_a_mention_is_autocompleted_and_highlighted_for_the_person_mentioned(new_user, asgi_server):
    alice = new_user("alice")
    bob = new_user("bob")
    room_url = pages.create_room(alice.page, "mention")
    rid = room_id_of(room_url)
    join(asgi_server, rid, bob.username)
    seed(
        asgi_server,
        "u = user(name)\nu.profile.display_name = 'Bob Builder'\nu.profile.save()\n",
        name=bob.username,
    )
    bob.page.goto("/")
    stream_open(bob.page)
    page = alice.page
    wait_connected(page)
    composer = page.locator("#composer-body")
    composer.click()
    composer.press_sequentially("thanks @" + bob.username[:4])
    options = page.get_by_test_id("mention-list").get_by_role("option")
    expect(options.first).to_contain_text("Bob Builder")
    expect(options.first).to_have_attribute("aria-selected", "true")
    active = composer.get_attribute("aria-activedescendant")
    assert active and page.locator(f"#{active}").count() == 1
    composer.press("Enter")  # picks, does not send
    expect(composer).to_have_value(f"thanks @{bob.username} ")
    expect(page.get_by_test_id("mention-list")).to_be_hidden()
    composer.press_sequentially("for the help")
    composer.press("Enter")
    expect(composer).to_have_value("")
    mention = article(page, "for the help").locator(f'[data-mention="{user_id(bob.page)}"]')
    expect(mention).to_have_text(f"@{bob.username}")
    # Bob's sidebar counts the mention; in the room it is highlighted more strongly for him.
    expect(badge(bob.page, rid, "mentions")).to_have_text("@1")
    bob.page.goto(room_url)
    wait_connected(bob.page)
    for_bob = article(bob.page, "for the help").locator(f'[data-mention="{user_id(bob.page)}"]')
    strong = for_bob.evaluate("el => getComputedStyle(el).backgroundColor")
    normal = mention.evaluate("el => getComputedStyle(el).backgroundColor")
    assert strong != normal, (strong, normal)
    # Escape closes the list; @room is offered too.
    composer = bob.page.locator("#composer-body")
    composer.press_sequentially("@ro")
    mention_list = bob.page.get_by_test_id("mention-list")
    room_option = mention_list.get_by_role("option", name=re.compile("@room"))
    expect(room_option).to_be_visible()
    composer.press("Escape")
    expect(bob.page.get_by_test_id("mention-list")).to_be_hidden()
    expect(composer).to_have_value("@ro")


# --- Notifications ----------------------------------------------------------------------------
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__notifications = [];
  function Recorded(title, options) {
    window.__notifications.push({ title, ...(options || {}) });
    this.title = title;
    this.close = () => {};
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recorded;
})();
"""


def test_a_notification_is_shown_for_a_direct_message_after_opting_in(new_user):
    bob = new_user("bob", permissions=["notifications"])
    alice = new_user("alice")
    bob.context.add_init_script(RECORD_NOTIFICATIONS)
    bob.page.goto("/profiles/")
    stream_open(bob.page)
    toggle = bob.page.get_by_test_id("notifications-toggle")
    expect(toggle).to_have_text(re.compile("Enable notifications"))
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")

    alice.page.goto("/profiles/")
    card = alice.page.locator(f'[data-testid=profile-card][data-username="{bob.username}"]')
    card.get_by_role("button", name="Message").click()
    alice.page.wait_for_url(ROOM_URL)
    wait_connected(alice.page)
    send(alice.page, "ping for you")
    wait_until(bob.page, "window.__notifications.length > 0")
    [note] = bob.page.evaluate("window.__notifications")
    assert note["body"].endswith("ping for you") or "ping for you" in note["body"], note
    assert re.fullmatch(r"parley-\d+", note["tag"]), note
    # Looking at that conversation in a focused tab: no notification.
    bob.page.goto(alice.page.url)
    wait_connected(bob.page)
    bob.page.bring_to_front()
    send(alice.page, "you are here")
    expect(article(bob.page, "you are here")).to_be_visible()
    bob.page.wait_for_timeout(800)
    assert bob.page.evaluate("window.__notifications.length") == 0


# --- Private groups, and a removed member's room closing --------------------------------------
def test_a_private_group_is_created_and_a_removed_members_room_closes(new_user):
    alice = new_user("alice")
    bob = new_user("bob")
    bob.page.goto("/")
    stream_open(bob.page)
    page = alice.page
    page.goto("/")
    name = f"launch-{secrets.token_hex(2)}"
    form = page.locator("#room-create-form")
    form.locator("input[name=name]").fill(name)
    members = form.locator("input[name=members]")
    expect(members).to_be_hidden()  # only for a private group
    form.get_by_label("Private group").check()
    members.fill(bob.username)
    form.get_by_role("button", name="Create room").click()
    page.wait_for_url(ROOM_URL)
    rid = room_id_of(page.url)
    expect(page.get_by_test_id("room-title")).to_contain_text(name)
    expect(page.get_by_test_id(f"room-link-{rid}")).to_have_attribute("data-kind", "private")

    # Bob's sidebar gets it live (no reload), and he opens it.
    link = bob.page.get_by_test_id(f"room-link-{rid}")
    expect(link).to_contain_text(name)
    link.click()
    bob.page.wait_for_url(page.url)
    wait_connected(bob.page)

    # Alice removes him in the room's settings: his open room closes, the group leaves his
    # sidebar, and he can type nothing more.
    page.get_by_test_id("room-menu").locator("summary").click()
    page.get_by_test_id("room-settings-link").click()
    bob_id = user_id(bob.page)
    page.get_by_test_id(f"member-remove-{bob_id}").click()
    expect(page.get_by_test_id(f"member-{bob_id}")).to_have_count(0)
    status = bob.page.locator("#connection-status")
    expect(status).to_have_text("You no longer have access to this room", timeout=3000)
    expect(bob.page.get_by_test_id(f"room-link-{rid}")).to_have_count(0)
    expect(bob.page.locator("#composer-body")).to_be_disabled()
    assert bob.page.goto(f"/chat/room/{rid}/").status == 404


# --- Joining from the directory, and the quick switcher -----------------------------------------
def test_join_from_the_directory_and_jump_there_with_the_switcher(new_user):
    alice = new_user("alice")
    carol = new_user("carol")
    room_url = pages.create_room(alice.page, "switch")
    rid = room_id_of(room_url)
    name = alice.page.get_by_test_id("room-title").inner_text().removeprefix("# ")
    page = carol.page
    page.goto("/")
    stream_open(page)
    expect(page.get_by_test_id(f"room-link-{rid}")).to_have_count(0)
    page.get_by_test_id(f"join-{rid}").click()
    expect(page.get_by_test_id(f"joined-{rid}")).to_be_visible()
    expect(page.get_by_test_id(f"room-link-{rid}")).to_contain_text(name)

    page.goto("/profiles/")
    page.keyboard.press("Control+k")
    switcher = page.get_by_test_id("switcher")
    expect(switcher).to_be_visible()
    field = page.locator("#switcher-input")
    expect(field).to_be_focused()
    field.press_sequentially(name.split("-")[1][:4])  # a few letters
    first = page.locator("#switcher-list [role=option]").first
    expect(first).to_contain_text(name)
    expect(first).to_have_attribute("aria-selected", "true")
    field.press("Enter")
    page.wait_for_url(room_url)
    wait_connected(page)
    # Escape closes it without going anywhere.
    page.keyboard.press("Control+k")
    expect(switcher).to_be_visible()
    page.keyboard.press("Escape")
    expect(switcher).to_be_hidden()


# --- Review fixes: many unread, @room for owners only, signed out, titles, muted dots --------
MANY_UNREAD_SEED = """
room = Room.objects.get(pk=room_id)
services.room_join(room=room, user=user(me))
for i in range(30):
    say(room, bob_name, f"already read {i}.")
services.room_mark_read(room=room, user=user(me), seq=10**6)
for i in range(unread):
    say(room, bob_name, f"unread number {i}.")
"""


def in_view(page, locator) -> bool:
    """The element is inside the message scroller's visible box."""
    box = locator.bounding_box()
    view = page.locator("#message-scroller").bounding_box()
    return bool(box and view) and view["y"] <= box["y"] < view["y"] + view["height"]


def open_with_many_unread(new_user, asgi_server, unread: int):
    bob = new_user("bob")
    alice = new_user("alice", viewport=DESKTOP, locale="en-US", timezone_id="UTC")
    room_url = pages.create_room(bob.page, "many")
    rid = room_id_of(room_url)
    seed(
        asgi_server,
        MANY_UNREAD_SEED,
        room_id=rid,
        me=alice.username,
        bob_name=bob.username,
        unread=unread,
    )
    other = alice.context.new_page()
    other.goto("/profiles/")
    stream_open(other)
    expect(badge(other, rid)).to_have_text("99+")
    page = alice.page
    page.bring_to_front()
    page.goto(room_url)
    wait_connected(page)
    return page, other, rid


def test_a_room_with_120_unread_opens_at_the_first_of_them(new_user, asgi_server):
    page, other, rid = open_with_many_unread(new_user, asgi_server, 120)
    first = article(page, "unread number 0.")
    expect(first.get_by_test_id("unread-divider")).to_have_count(1)
    expect(page.get_by_test_id("unread-divider")).to_have_count(1)
    assert in_view(page, page.get_by_test_id("unread-divider"))
    expect(article(page, "already read 29.")).to_have_count(1)  # read context above it
    # The newest is not in view: nothing is read yet.
    page.wait_for_timeout(1000)
    expect(badge(other, rid)).to_have_text("99+")
    shoot(page, "room-many-unread")
    # Reaching the bottom reads everything (as Slack does), the divider stays put.
    page.locator("#message-scroller").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(badge(other, rid)).to_have_text("", timeout=3000)
    expect(first.get_by_test_id("unread-divider")).to_have_count(1)


def test_a_room_with_more_unread_than_a_page_loads_back_to_the_first(new_user, asgi_server):
    page, other, rid = open_with_many_unread(new_user, asgi_server, 260)
    first = article(page, "unread number 0.")
    expect(first.get_by_test_id("unread-divider")).to_have_count(1)
    expect(page.get_by_test_id("unread-divider")).to_have_count(1)
    wait_until(page, "!document.getElementById('chat').hasAttribute('data-seeking-unread')")
    assert in_view(page, page.get_by_test_id("unread-divider"))
    page.wait_for_timeout(1000)
    expect(badge(other, rid)).to_have_text("99+")


def test_room_mentions_are_offered_to_owners_only_where_the_policy_says_so(new_user, asgi_server):
    owner = new_user("owner")
    member = new_user("member")
    room_url = pages.create_room(owner.page, "policy")
    rid = room_id_of(room_url)
    join(asgi_server, rid, member.username)
    seed(
        asgi_server,
        "room = Room.objects.get(pk=room_id)\n"
        "services.room_update(room=room, user=user(name), room_mentions='owners')\n",
        room_id=rid,
        name=owner.username,
    )
    for who, offered, other in ((member, False, owner), (owner, True, member)):
        page = who.page
        page.goto(room_url)
        wait_connected(page)
        composer = page.locator("#composer-body")
        composer.click()
        composer.press_sequentially("@" + other.username[:4])  # someone: the list opens
        mention_list = page.get_by_test_id("mention-list")
        expect(mention_list.get_by_role("option").first).to_be_visible()
        composer.fill("")
        composer.press_sequentially("@ro")
        room_option = mention_list.get_by_role("option", name=re.compile("@room"))
        if offered:
            expect(room_option).to_be_visible()
        else:
            page.wait_for_timeout(500)
            expect(room_option).to_have_count(0)


def test_signed_out_the_sidebar_is_never_the_login_page(new_user):
    alice = new_user("alice")
    page = alice.page
    page.goto("/profiles/")
    stream_open(page)
    alice.context.clear_cookies()
    page.evaluate("() => window.Parley.refetchSidebar()")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    expect(page.locator("#sidebar-content")).to_have_count(0)


def test_a_room_named_like_a_count_keeps_its_title_and_a_muted_dot_is_announced(
    new_user, asgi_server
):
    bob = new_user("bob")
    alice = new_user("alice")
    tag = secrets.token_hex(2)
    ids = seed(
        asgi_server,
        "room = services.room_create(name=f'(3) x{tag}', creator=user(bob_name))\n"
        "quiet = services.room_create(name=f'quiet-{tag}', creator=user(bob_name))\n"
        "busy = services.room_create(name=f'busy-{tag}', creator=user(bob_name))\n"
        "for r in (room, quiet, busy):\n"
        "    services.room_join(room=r, user=user(me))\n"
        "services.membership_set_notify(room=quiet, user=user(me), notify='none')\n"
        "say(quiet, bob_name, 'shh')\n"
        "out.update(room=room.pk, quiet=quiet.pk, busy=busy.pk)\n",
        bob_name=bob.username,
        me=alice.username,
        tag=tag,
    )
    page = alice.page
    page.goto(f"/chat/room/{ids['room']}/")
    wait_connected(page)
    stream_open(page)
    expect(page).to_have_title(f"(3) x{tag} · Parley")
    quiet = page.get_by_test_id(f"room-link-{ids['quiet']}")
    expect(quiet).to_have_attribute("data-dot", "")
    expect(quiet.locator("[data-sr-counts]")).to_have_text(", unread messages, muted")
    # A count arrives (another room): exactly one prefix before the room's own name.
    bob.page.goto(f"/chat/room/{ids['busy']}/")
    wait_connected(bob.page)
    send(bob.page, "elsewhere")
    expect(page).to_have_title(f"(1) (3) x{tag} · Parley")
    page.reload()
    wait_connected(page)
    stream_open(page)
    expect(page).to_have_title(f"(1) (3) x{tag} · Parley")
