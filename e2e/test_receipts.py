"""Read receipts in real browsers (issue 11): "Seen" appears under Alice's DM message in her
page when Bob opens the conversation; with "Send read receipts" off (the profile editor)
neither side sees them; a small group shows who has read up to each message as small avatars.
Screenshots into /work/notes/shots/ (and e2e/artifacts/)."""

import re
import time

from pages import ROOM_URL, wait_connected
from playwright.sync_api import expect
from test_sidebar import DESKTOP, article, seed, send, shoot


def open_dm(page, other_username: str) -> None:
    page.goto("/profiles/")
    card = page.locator(f'[data-testid=profile-card][data-username="{other_username}"]')
    card.get_by_role("button", name="Message").click()
    page.wait_for_url(ROOM_URL)
    wait_connected(page)


def open_focused(page, url: str) -> None:
    page.goto(url)
    wait_connected(page)
    page.bring_to_front()  # a focused page at the bottom reads what it shows


def receipts_off(page) -> None:
    page.goto("/profiles/me/edit/")
    box = page.get_by_test_id("send-read-receipts")
    box.uncheck()
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_test_id("profile-saved")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("send-read-receipts")).not_to_be_checked()


def pointer(asgi_server, room_url: str, username: str) -> int:
    out = seed(
        asgi_server,
        "out['seq'] = Membership.objects.get(room_id=room, user__username=name).last_read_seq",
        room=int(ROOM_URL.search(room_url)[1]),
        name=username,
    )
    return out["seq"]


def wait_for_pointer(asgi_server, room_url: str, username: str, at_least: int) -> None:
    for _ in range(100):
        if pointer(asgi_server, room_url, username) >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"{username} never read to {at_least}")


def test_seen_appears_under_a_dm_message_when_the_other_person_opens_it(new_user):
    alice = new_user("alice", viewport=DESKTOP, locale="en-US", timezone_id="UTC")
    bob = new_user("bob")
    open_dm(alice.page, bob.username)
    send(alice.page, "Lunch at noon?")
    mine = article(alice.page, "Lunch at noon?")
    expect(mine).to_be_visible()
    expect(alice.page.get_by_test_id("seen-by")).to_have_count(0)  # Bob has not opened it

    open_focused(bob.page, alice.page.url)
    expect(article(bob.page, "Lunch at noon?")).to_be_visible()

    seen = mine.get_by_test_id("seen-by")
    expect(seen).to_have_text("Seen", timeout=5000)
    expect(seen).to_have_attribute("title", re.compile(r"^Seen at "))  # when it came live
    expect(alice.page.get_by_test_id("seen-by")).to_have_count(1)
    expect(bob.page.get_by_test_id("seen-by")).to_have_count(0)  # Alice's read is not his news
    alice.page.bring_to_front()
    shoot(alice.page, "receipts-dm-seen")

    # A newer message of mine moves "Seen" once Bob has read it too.
    bob.page.bring_to_front()
    send(alice.page, "Or one?")
    expect(article(alice.page, "Or one?").get_by_test_id("seen-by")).to_have_text(
        "Seen", timeout=5000
    )
    expect(alice.page.get_by_test_id("seen-by")).to_have_count(1)

    # A fresh load shows the same thing (from the page, not a frame).
    alice.page.reload()
    wait_connected(alice.page)
    expect(article(alice.page, "Or one?").get_by_test_id("seen-by")).to_have_text("Seen")


def test_with_receipts_off_neither_side_sees_them(new_user, asgi_server):
    carol = new_user("carol")
    dave = new_user("dave")
    receipts_off(carol.page)
    open_dm(carol.page, dave.username)
    send(carol.page, "from carol")
    url = carol.page.url

    # Dave reads Carol's message: Carol, who sends none, sees none.
    open_focused(dave.page, url)
    expect(article(dave.page, "from carol")).to_be_visible()
    wait_for_pointer(asgi_server, url, dave.username, 1)
    # Carol reads Dave's message: Dave does not see hers.
    send(dave.page, "from dave")
    open_focused(carol.page, url)
    expect(article(carol.page, "from dave")).to_be_visible()
    wait_for_pointer(asgi_server, url, carol.username, 2)
    dave.page.wait_for_timeout(1500)  # past the one-second coalescing of receipts frames

    for page in (carol.page, dave.page):
        expect(page.get_by_test_id("seen-by")).to_have_count(0)
    dave.page.reload()
    wait_connected(dave.page)
    expect(article(dave.page, "from dave")).to_be_visible()
    expect(dave.page.get_by_test_id("seen-by")).to_have_count(0)


GROUP_SEED = """
owner, others = user(me), [user(name) for name in names]
room = services.room_create(
    name="design-" + tag, creator=owner, private=True, members=[u.username for u in others]
)
for u, name in zip(others, ["Bea Lopez", "Chen Wu", "Dara Okafor"]):
    u.profile.display_name = name
    u.profile.save()
first = say(room, me, "Draft of the launch post is in the doc")
say(room, names[0], "Reading it now")
second = say(room, me, "Comments by Friday please")
services.room_mark_read(room=room, user=others[1], seq=first.seq)
services.room_mark_read(room=room, user=others[2], seq=second.seq)
out["room"] = room.pk
out["chen"] = others[1].pk
"""


def test_a_small_group_shows_who_has_read_each_message(new_user, asgi_server):
    alice = new_user("alice", viewport=DESKTOP, locale="en-US", timezone_id="UTC")
    others = [new_user(stem) for stem in ("bea", "chen", "dara")]
    names = [other.username for other in others]
    ids = seed(asgi_server, GROUP_SEED, me=alice.username, names=names, tag=str(int(time.time())))
    page = alice.page
    page.goto(f"/chat/room/{ids['room']}/")
    wait_connected(page)

    # Chen read up to the first message, Bea up to her own reply (her pointer: she posted
    # it), Dara everything: each once, under the newest message they read that is not theirs.
    first = article(page, "Draft of the launch post").get_by_test_id("seen-by")
    expect(first.locator(".sr-only")).to_have_text("Seen by Bea Lopez, Chen Wu")
    expect(first.locator(".receipt-avatar")).to_have_count(2)
    last = article(page, "Comments by Friday").get_by_test_id("seen-by")
    expect(last.locator(".sr-only")).to_have_text("Seen by Dara Okafor")
    expect(article(page, "Reading it now").get_by_test_id("seen-by")).to_have_count(0)
    shoot(page, "receipts-group-avatars")

    # Live: Chen opens the group and reads everything; his avatar moves to the last message.
    open_focused(others[1].page, page.url)
    expect(last.locator(".sr-only")).to_have_text("Seen by Chen Wu, Dara Okafor", timeout=5000)
    expect(first.locator(".sr-only")).to_have_text("Seen by Bea Lopez")
    # He sees the others' (Alice's too: under Bea's reply, the newest message she read that
    # is not hers), never his own.
    chens = others[1].page
    expect(chens.get_by_test_id("seen-by")).to_have_count(3)
    expect(article(chens, "Reading it now").locator(".sr-only")).to_have_text(
        re.compile(r"^Seen by alice")
    )
    expect(chens.locator(f'#message-list [data-reader="{ids["chen"]}"]')).to_have_count(0)
