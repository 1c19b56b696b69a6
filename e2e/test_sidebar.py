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

from pages import ROOM_URL, wait_connected
from playwright.sync_api import expect

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
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


def badge(page, room_id: int, kind: str = "unread"):
    return page.get_by_test_id(f"{kind}-{room_id}")


def room_id_of(url: str) -> int:
    return int(ROOM_URL.search(url)[1])


def stream_open(page) -> None:
    """The page's socket is up and its first "sync" is in (the counts are the server's)."""
    if os.environ.get("NO_STREAM"):
        return
    expect(page.locator("body")).to_have_attribute("data-stream", "open")


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
    phone.keyboard.press("Escape")
    expect(phone.locator("#sidebar")).to_be_hidden()
    expect(phone.get_by_test_id("sidebar-open")).to_be_focused()
    overflow = phone.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"scrolls sideways by {overflow}px"


def user_id(page) -> str:
    return page.locator("body").get_attribute("data-user")
