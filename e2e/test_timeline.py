"""The timeline you can change, in real browsers: edits, deletes, reactions and replies made in
one browser appear in another live; message formatting renders safely; history keeps the
reader's place; and screenshots of a grouped timeline (desktop and phone) to look at."""

import json
import re

import pages
from pages import ROOM_URL, wait_connected
from playwright.sync_api import expect

DESKTOP = {"width": 1280, "height": 1000}  # tall enough for the whole seeded timeline
PHONE = {"width": 390, "height": 844}


# --- Helpers ------------------------------------------------------------------------------------
def create_room(page, stem: str = "timeline") -> tuple[str, int]:
    """A public room made through the home page form: (its URL, its id)."""
    url = pages.create_room(page, stem)
    return url, int(ROOM_URL.search(url)[1])


def send(page, text: str) -> None:
    composer = page.locator("#composer-body")
    composer.fill(text)
    composer.press("Enter")
    expect(composer).to_have_value("")
    # Acknowledged: the server's article replaced the pending copy.
    expect(page.locator("#pending-list > article")).to_have_count(0)


def article(page, text: str):
    return page.locator("#message-list > article", has_text=text)


def action(page, message, name: str):
    """A message's action button, shown the way a mouse user finds it (hovering the message)."""
    message.hover()
    button = message.locator(f".message-actions [data-action={name}]")
    expect(button).to_be_visible()
    return button


def round_trip(page) -> None:
    """One request to the server and back: anything the page was about to send is sent."""
    page.evaluate("() => fetch('/accounts/login/').then(r => r.text())")


SEED_PRELUDE = """
from datetime import timedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from apps.chat import services
from apps.chat.models import Message, Room
from apps.core import ratelimit
# Bulk data for a test, not a person typing: counted nowhere (with Redis as the cache the
# counters are shared with the server, and would leave the author rate limited there).
ratelimit.hit = lambda **kwargs: None
User = get_user_model()
"""


def seed(asgi_server, code: str, **values) -> str:
    """Run ``code`` in the server's Django shell, with ``values`` bound as variables."""
    bindings = "".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items())
    return asgi_server.django(SEED_PRELUDE + bindings + code)


def seed_history(asgi_server, *, room_id: int, username: str, count: int) -> None:
    seed(
        asgi_server,
        """
room = Room.objects.get(pk=room_id)
author = User.objects.get(username=username)
for i in range(1, count + 1):
    services.message_send(room=room, author=author, body=f"history {i}")
""",
        room_id=room_id,
        username=username,
        count=count,
    )


# --- Live changes between two people ------------------------------------------------------------
def test_edit_react_reply_and_delete_in_one_browser_appear_live_in_the_other(new_user):
    alice = new_user("alice")
    bob = new_user("bob")
    room_url, _ = create_room(alice.page)
    bob.page.goto(room_url)
    wait_connected(alice.page)
    wait_connected(bob.page)
    bob.page.evaluate("window.__e2eNoReload = 'still here'")

    send(alice.page, "Lunch at **noon**?")
    at_bob = article(bob.page, "Lunch at noon?")
    expect(at_bob.locator(".message-body strong")).to_have_text("noon")
    alice_name = at_bob.locator(".message-author").inner_text()
    original_id = at_bob.get_attribute("id")
    # From here on the same element, whatever its text becomes.
    at_bob = bob.page.locator(f"#{original_id}")

    # Bob reacts through the picker; both see it, only Bob's is pressed.
    action(bob.page, at_bob, "react").click()
    picker = bob.page.locator("#emoji-picker")
    expect(picker).to_be_visible()
    expect(bob.page.locator("#emoji-search")).to_be_focused()
    picker.locator("[data-emoji-common] .emoji-option[data-emoji='👍']").click()
    expect(picker).to_be_hidden()
    at_alice = alice.page.locator(f"#{original_id}")
    thumbs_alice = at_alice.locator(".reaction[data-emoji='👍']")
    expect(thumbs_alice.locator(".reaction-count")).to_have_text("1")
    expect(thumbs_alice).to_have_attribute("aria-pressed", "false")
    bob_name = thumbs_alice.get_attribute("title")
    assert bob_name and bob_name in (thumbs_alice.get_attribute("aria-label") or "")
    thumbs_bob = at_bob.locator(".reaction[data-emoji='👍']")
    expect(thumbs_bob).to_have_attribute("aria-pressed", "true")

    # Alice adds hers by clicking the reaction; Bob sees two and both names.
    thumbs_alice.click()
    expect(thumbs_bob.locator(".reaction-count")).to_have_text("2")
    expect(thumbs_bob).to_have_attribute("title", re.compile(re.escape(alice_name)))
    expect(thumbs_alice).to_have_attribute("aria-pressed", "true")

    # Alice edits: the editor holds the Markdown source; Enter saves; Bob sees the new text.
    action(alice.page, at_alice, "edit").click()
    editor = at_alice.locator(".message-editor textarea")
    expect(editor).to_have_value("Lunch at **noon**?")
    expect(editor).to_be_focused()
    editor.fill("Lunch at *one* instead?")
    editor.press("Enter")
    edited_at_bob = article(bob.page, "Lunch at one instead?")
    expect(edited_at_bob.locator(".message-body em")).to_have_text("one")
    expect(edited_at_bob.locator(".message-edited")).to_be_visible()
    expect(edited_at_bob.locator(".message-edited")).to_have_attribute("title", re.compile(r"\d"))
    expect(at_alice.locator(".message-editor")).to_have_count(0)
    expect(edited_at_bob.locator(".reaction-count")).to_have_text("2")  # reactions kept
    # Bob never had the edit controls for Alice's message.
    expect(edited_at_bob.locator("[data-action=edit]")).to_be_hidden()

    # Bob replies with a quote; Alice sees the quote and it leads to the original.
    action(bob.page, edited_at_bob, "reply").click()
    reply_bar = bob.page.locator("#reply-bar")
    expect(reply_bar).to_be_visible()
    expect(reply_bar).to_contain_text(alice_name)
    expect(reply_bar).to_contain_text("Lunch at one instead?")
    expect(bob.page.locator("#composer-body")).to_be_focused()
    send(bob.page, "Works for me")
    expect(reply_bar).to_be_hidden()
    reply_at_alice = article(alice.page, "Works for me")
    quote = reply_at_alice.locator(".reply-quote")
    expect(quote).to_contain_text(alice_name)
    expect(quote).to_contain_text("Lunch at *one* instead?")  # the source's first line
    expect(reply_at_alice).to_have_attribute("data-reply-to", original_id.split("-")[1])

    # Alice deletes hers after confirming; everyone sees the tombstone, and the reply's quote
    # now says the original was deleted.
    action(alice.page, at_alice, "delete").click()
    dialog = alice.page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Delete").click()
    tombstone = bob.page.locator(f"#{original_id}")
    expect(tombstone).to_have_attribute("data-deleted", "")
    expect(tombstone).to_contain_text("This message was deleted")
    expect(tombstone.locator(".reactions, .message-actions, .message-body")).to_have_count(0)
    expect(article(bob.page, "Works for me").locator(".reply-quote")).to_contain_text(
        "deleted message"
    )
    expect(alice.page.locator(f"#{original_id}")).to_contain_text("This message was deleted")

    # Each message is on each page once, in seq order, and nobody's page reloaded.
    for page in (alice.page, bob.page):
        seqs = page.locator("#message-list > article").evaluate_all(
            "els => els.map(e => +e.dataset.seq)"
        )
        assert seqs == sorted(set(seqs)), seqs
    assert bob.page.evaluate("window.__e2eNoReload") == "still here"


def test_the_keyboard_alone_edits_reacts_and_deletes(new_user):
    """Up in the empty composer edits your last message; Escape cancels; actions appear on
    keyboard focus; the picker and the confirmation dialog work without a mouse."""
    dana = new_user("dana")
    create_room(dana.page)
    wait_connected(dana.page)
    page = dana.page
    send(page, "first draft")
    send(page, "second draft")
    composer = page.locator("#composer-body")

    composer.press("ArrowUp")
    mine = article(page, "second draft")
    editor = mine.locator(".message-editor textarea")
    expect(editor).to_have_value("second draft")
    editor.press("Escape")
    expect(mine.locator(".message-editor")).to_have_count(0)
    expect(composer).to_be_focused()
    expect(mine.locator(".message-body")).to_have_text("second draft")

    composer.press("ArrowUp")
    expect(editor).to_have_value("second draft")
    editor.fill("second, final")
    editor.press("Enter")
    expect(article(page, "second, final").locator(".message-edited")).to_be_visible()
    expect(composer).to_be_focused()

    # An empty edit is refused: the editor stays open with the text and says why.
    composer.press("ArrowUp")
    editor = article(page, "second, final").locator(".message-editor textarea")
    expect(editor).to_have_value("second, final")
    editor.fill("   ")
    editor.press("Enter")
    expect(article(page, "second, final").locator(".editor-error")).to_have_text(re.compile(r"\S"))
    expect(editor).to_have_value("   ")
    editor.press("Escape")

    # Keyboard focus on an action shows the toolbar.
    first = article(page, "first draft")
    react = first.locator(".message-actions [data-action=react]")
    react.focus()
    expect(first.locator(".message-actions")).to_have_css("opacity", "1")
    react.press("Enter")
    search = page.locator("#emoji-search")
    expect(search).to_be_focused()
    search.fill("rocket")
    expect(page.locator("[data-emoji-all] .emoji-option:visible")).to_have_count(1)
    search.press("Enter")
    expect(first.locator(".reaction[data-emoji='🚀']")).to_have_attribute("aria-pressed", "true")
    # Escape closes the picker, and focus comes back to the button that opened it.
    react.focus()
    react.press("Enter")
    expect(page.locator("#emoji-picker")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#emoji-picker")).to_be_hidden()
    expect(react).to_be_focused()

    # Delete: the dialog opens on Cancel; Escape keeps the message; Tab + Enter deletes it.
    delete = first.locator("[data-action=delete]")
    delete.focus()
    delete.press("Enter")
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()
    delete.press("Enter")
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Delete")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#message-list > article[data-deleted]")).to_have_count(1)
    expect(page.locator("#message-list > article[data-deleted]")).to_contain_text(
        "This message was deleted"
    )


# --- Formatting ---------------------------------------------------------------------------------
def test_markdown_renders_and_nothing_in_a_message_can_script_the_page(new_user):
    erin = new_user("erin")
    frank = new_user("frank")
    room_url, _ = create_room(erin.page)
    frank.page.goto(room_url)
    wait_connected(erin.page)
    wait_connected(frank.page)
    for page in (erin.page, frank.page):
        page.evaluate("window.__xss = []")

    cases = [
        "**bold** and _italic_ and ~~gone~~ and `code`",
        "<img src=x onerror=window.__xss.push('img')>",
        "[click me](javascript:window.__xss.push('link'))",
        "see https://example.com/docs?q=1 for more",
        '<script>window.__xss.push("script")</script> <b onclick="x()">b</b>',
        "> quoted\n\n- one\n- two\n\n```\nfn main() {}\n```",
    ]
    for text in cases:
        send(erin.page, text)
    expect(frank.page.locator("#message-list > article")).to_have_count(len(cases))
    for page in (frank.page, erin.page):
        bodies = page.locator("#message-list > article .message-body")
        first = bodies.nth(0)
        expect(first.locator("strong")).to_have_text("bold")
        expect(first.locator("em")).to_have_text("italic")
        expect(first.locator("s, del")).to_have_text("gone")
        expect(first.locator("code")).to_have_text("code")

        # Raw HTML is text, not elements.
        expect(bodies.nth(1)).to_have_text("<img src=x onerror=window.__xss.push('img')>")
        expect(bodies.nth(1).locator("img")).to_have_count(0)
        expect(bodies.nth(4)).to_contain_text('<script>window.__xss.push("script")</script>')
        expect(bodies.nth(4).locator("script, b")).to_have_count(0)

        # No javascript: link (the text may stay, but not as a link there).
        assert bodies.nth(2).locator("a[href^='javascript' i]").count() == 0
        expect(bodies.nth(2)).to_contain_text("click me")

        # A bare URL becomes a safe link.
        link = bodies.nth(3).locator("a")
        expect(link).to_have_attribute("href", "https://example.com/docs?q=1")
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
        expect(link).to_have_attribute("rel", re.compile(r"\bnoreferrer\b"))

        block = bodies.nth(5)
        expect(block.locator("blockquote")).to_contain_text("quoted")
        expect(block.locator("ul > li")).to_have_count(2)
        expect(block.locator("pre > code")).to_contain_text("fn main() {}")

        # Nothing in any message carries attributes that could hook into the page or htmx.
        hooks = bodies.evaluate_all(
            """els => els.flatMap(b => [...b.querySelectorAll('*')]).flatMap(e =>
                [...e.attributes].map(a => a.name)
                  .filter(n => n.startsWith('on') || n.startsWith('hx-') || n === 'style'
                               || n === 'id' || n === 'class'))"""
        )
        assert hooks == []
        bodies.nth(1).click()
        bodies.nth(2).click()
        assert page.evaluate("window.__xss") == []


# --- History ------------------------------------------------------------------------------------
def test_scrolling_up_loads_one_older_page_and_keeps_the_readers_place(new_user, asgi_server):
    gina = new_user("gina")
    room_url, room_id = create_room(gina.page)
    seed_history(asgi_server, room_id=room_id, username=gina.username, count=130)
    page = gina.page
    held = []
    page.route("**/history/?before=*", lambda route: held.append(route))
    page.goto(room_url)
    wait_connected(page)
    articles = page.locator("#message-list > article")
    expect(articles).to_have_count(50)  # seqs 81…130
    scroller = page.locator("#message-scroller")
    # At the bottom, the latest message in view.
    expect(article(page, "history 130")).to_be_in_viewport()

    # The reader scrolls to the top: the first loaded message is their anchor.
    scroller.evaluate("el => { el.scrollTop = 0; }")
    anchor = page.locator("#message-list > article[data-seq='81']")
    wait_for_held(page, held, 1)
    assert held[0].request.url.endswith("?before=81")
    before = anchor.bounding_box()
    assert before is not None
    held[0].continue_()
    expect(articles).to_have_count(100)  # seqs 31…130
    after = anchor.bounding_box()
    assert after is not None
    assert abs(after["y"] - before["y"]) <= 3, (before, after)

    # No cascade: the next "Load older messages" is above the view and was not requested.
    older = page.locator("#older-messages button")
    expect(older).to_have_attribute("data-older-url", re.compile(r"before=31$"))
    expect(older).not_to_be_in_viewport()
    round_trip(page)
    assert len(held) == 1

    # Tabbing to the button scrolls it into view but loads nothing by itself; Enter does.
    scroller.focus()
    page.keyboard.press("Tab")
    expect(older).to_be_focused()
    expect(older).to_be_in_viewport()
    round_trip(page)
    assert len(held) == 1
    page.keyboard.press("Enter")
    wait_for_held(page, held, 2)
    held[1].continue_()
    expect(articles).to_have_count(130)
    expect(page.locator("#older-messages")).to_have_count(0)
    seqs = articles.evaluate_all("els => els.map(e => +e.dataset.seq)")
    assert seqs == list(range(1, 131))
    # The scroller keeps focus for the keyboard (the button it was on is gone).
    expect(scroller).to_be_focused()
    page.keyboard.press("End")
    expect(article(page, "history 130")).to_be_in_viewport()


def test_new_messages_while_scrolled_up_show_a_pill_and_keep_the_readers_place(
    new_user, asgi_server
):
    kim = new_user("kim")
    lee = new_user("lee")
    room_url, room_id = create_room(kim.page)
    # Lee's history; Kim sends the new message live.
    seed_history(asgi_server, room_id=room_id, username=lee.username, count=60)
    lee.page.goto(room_url)
    kim.page.goto(room_url)
    wait_connected(lee.page)
    wait_connected(kim.page)
    page = lee.page
    pill = page.locator("#jump-latest")
    expect(pill).to_be_hidden()  # at the bottom: nothing to jump to
    page.locator("#message-scroller").evaluate("el => { el.scrollTop = el.scrollHeight / 3; }")
    anchor = page.locator("#message-list > article[data-seq='30']")
    anchor.scroll_into_view_if_needed()
    expect(anchor).to_be_in_viewport()
    before = anchor.bounding_box()

    send(kim.page, "something new")
    expect(pill).to_be_visible()
    expect(pill).to_have_text("New messages ↓")
    expect(article(page, "something new")).not_to_be_in_viewport()
    after = anchor.bounding_box()
    assert before and after and abs(after["y"] - before["y"]) <= 3, (before, after)

    pill.click()
    expect(article(page, "something new")).to_be_in_viewport()
    expect(pill).to_be_hidden()


def test_a_change_to_a_message_of_a_history_page_on_its_way_is_not_lost(new_user, asgi_server):
    """The history page was read before the message changed, the change arrived live while the
    page was on its way (and was set aside: that message was not loaded yet): the page shows
    the changed message, not the state the history response carried."""
    hana = new_user("hana")
    room_url, room_id = create_room(hana.page)
    seed_history(asgi_server, room_id=room_id, username=hana.username, count=60)
    old_id = int(
        seed(
            asgi_server,
            "print(Message.objects.get(room_id=room_id, body='history 5').pk)",
            room_id=room_id,
        ).split()[-1]  # the shell prints a banner first
    )
    page = hana.page
    held = []
    page.route("**/history/?before=*", lambda route: held.append(route))
    page.goto(room_url)
    wait_connected(page)
    page.locator("#message-scroller").evaluate("el => { el.scrollTop = 0; }")
    wait_for_held(page, held, 1)
    stale = held[0].fetch()  # the server reads the page now, before the edit
    status = page.evaluate(
        """([room, id]) => fetch(`/api/rooms/${room}/messages/${id}/`, {
            method: "PATCH",
            credentials: "same-origin",
            headers: {
              "Content-Type": "application/json",
              "X-CSRFToken": document.querySelector("[name=csrfmiddlewaretoken]").value,
            },
            body: JSON.stringify({ body: "history 5, corrected" }),
          }).then(r => r.status)""",
        [room_id, old_id],
    )
    assert status == 200
    # Changes reach a socket in seq order: once this later message is on the page, the edit
    # has arrived too — and was set aside, as its message is not loaded yet.
    send(page, "after the edit")
    expect(page.locator(f"#message-{old_id}")).to_have_count(0)
    held[0].fulfill(response=stale)
    expect(page.locator(f"#message-{old_id}")).to_contain_text("history 5, corrected")


def wait_for_held(page, held: list, count: int) -> None:
    """Wait until ``count`` history requests are held by the route (Playwright calls route
    handlers while the test waits on it, so the loop waits in short steps until then)."""
    for _ in range(300):
        if len(held) >= count:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"only {len(held)} history requests, expected {count}")


def test_a_reply_quote_jumps_to_its_original_loading_older_history(new_user, asgi_server):
    hal = new_user("hal")
    room_url, room_id = create_room(hal.page)
    seed_history(asgi_server, room_id=room_id, username=hal.username, count=120)
    seed(
        asgi_server,
        """
room = Room.objects.get(pk=room_id)
first = Message.objects.get(room=room, seq=1)
services.message_send(room=room, author=User.objects.get(username=username),
                      body="replying to the very first", reply_to=first.pk)
""",
        room_id=room_id,
        username=hal.username,
    )
    page = hal.page
    page.goto(room_url)
    wait_connected(page)
    expect(page.locator("#message-list > article[data-seq='1']")).to_have_count(0)
    reply = article(page, "replying to the very first")
    expect(reply.locator(".reply-quote")).to_contain_text("history 1")
    reply.locator(".reply-quote").click()
    original = page.locator("#message-list > article[data-seq='1']")
    expect(original).to_be_in_viewport()
    expect(original).to_be_focused()
    expect(original).to_have_class(re.compile(r"\bis-highlighted\b"))
    seqs = page.locator("#message-list > article").evaluate_all(
        "els => els.map(e => +e.dataset.seq)"
    )
    assert seqs == list(range(1, 122))


# --- What the timeline looks like --------------------------------------------------------------
SCREENSHOT_SEED = """
alice = User.objects.get(username=alice_name)
bob = User.objects.get(username=bob_name)
for user, name in ((alice, "Alice Martin"), (bob, "Bob Chen")):
    user.profile.display_name = name
    user.profile.save()
room = Room.objects.get(pk=room_id)
def say(author, body, **kw):
    return services.message_send(room=room, author=author, body=body, **kw).message
m1 = say(alice, "Morning! Did anyone look at the **release notes** draft?")
m2 = say(alice, "It's in the shared folder: https://example.com/notes/v2")
m3 = say(bob, "Not yet, will do after standup.")
m4 = say(bob, "Ok, read it. Two things:\\n\\n"
              "1. the `--dry-run` flag is missing\\n2. typo in the intro")
m5 = say(alice, "Good catch, fixing both", reply_to=m4.pk)
m6 = say(alice, "> the `--dry-run` flag is missing\\n\\n"
                "Added:\\n\\n```\\nparley deploy --dry-run\\n```")
m7 = say(bob, "oops, wrong room")
m8 = say(bob, "Looks great now 🚀")
services.message_edit(room=room, user=alice, message_id=m5.pk, body="Good catch — fixed both")
services.message_delete(room=room, user=bob, message_id=m7.pk)
for user, e in ((bob, "👍"), (alice, "🎉"), (bob, "🎉")):
    services.reaction_add(room=room, user=user, message_id=m6.pk, emoji=e)
services.reaction_add(room=room, user=alice, message_id=m8.pk, emoji="❤️")
now = timezone.now()
morning = (now - timedelta(days=1)).replace(hour=9, minute=5)
for i, m in enumerate((m1, m2, m3, m4)):
    Message.objects.filter(pk=m.pk).update(created_at=morning + timedelta(minutes=i))
for i, m in enumerate((m5, m6, m7, m8)):
    Message.objects.filter(pk=m.pk).update(created_at=now - timedelta(minutes=10 - i))
room.refresh_from_db()  # both have read it all: no "New messages" line breaks a group
for user in (alice, bob):
    services.room_mark_read(room=room, user=user, seq=room.last_seq)
"""


def test_screenshots_of_a_grouped_timeline_desktop_and_phone(
    new_user, asgi_server, save_screenshot
):
    alice = new_user("alice", viewport=DESKTOP, locale="en-US", timezone_id="UTC")
    bob = new_user(
        "bob", viewport=PHONE, locale="en-US", timezone_id="UTC", is_mobile=True, has_touch=True
    )
    room_url, room_id = create_room(alice.page, "release")
    seed(
        asgi_server,
        SCREENSHOT_SEED,
        alice_name=alice.username,
        bob_name=bob.username,
        room_id=room_id,
    )
    for user, size in ((alice, "desktop"), (bob, "phone")):
        page = user.page
        page.goto(room_url)
        wait_connected(page)
        articles = page.locator("#message-list > article")
        expect(articles).to_have_count(8)
        # Grouping: Alice's second message and Bob's second are grouped under the first.
        grouped = articles.evaluate_all("els => els.map(e => e.classList.contains('is-grouped'))")
        # A reply starts a group of its own; a tombstone still counts as its author's.
        assert grouped == [False, True, False, True, False, True, False, True], grouped
        dividers = page.locator(".day-divider:not([hidden])")
        expect(dividers).to_have_text(["Yesterday", "Today"])
        # Every time has its full date on hover.
        titles = page.locator(".message-time").evaluate_all("els => els.map(e => e.title)")
        assert all(re.search(r"\d{4}", t) for t in titles), titles
        expect(page.locator("article[data-deleted]")).to_contain_text("This message was deleted")
        expect(page.locator(".message-edited")).to_have_count(1)
        expect(page.locator(".reply-quote")).to_contain_text("Ok, read it.")
        page.locator("#message-scroller").evaluate("el => { el.scrollTop = el.scrollHeight; }")
        # Hovering (desktop) shows a message's actions in the picture.
        if size == "desktop":
            article(page, "Added:").hover()
        save_screenshot(page, f"timeline-{size}")
        # The reaction picker, next to the button that opened it, with a search.
        last = article(page, "Looks great now")
        if size == "desktop":
            action(page, last, "react").click()
        else:
            last.locator(".reaction-add").tap()
        expect(page.locator("#emoji-picker")).to_be_visible()
        page.locator("#emoji-search").fill("heart")
        save_screenshot(page, f"timeline-picker-{size}")
        box = page.locator("#emoji-picker").bounding_box()
        viewport = page.viewport_size
        assert box and viewport and box["x"] >= 0 and box["y"] >= 0
        assert box["x"] + box["width"] <= viewport["width"]
        assert box["y"] + box["height"] <= viewport["height"]
        page.keyboard.press("Escape")
        expect(page.locator("#emoji-picker")).to_be_hidden()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"scrolls sideways by {overflow}px"

    # The same HTML, a different "mine" per viewer: Alice's four messages are hers on her
    # page only, and only she has their Edit button.
    alice_ids = alice.page.locator("#message-list > article.is-mine").evaluate_all(
        "els => els.map(e => e.id)"
    )
    bob_ids = bob.page.locator("#message-list > article.is-mine").evaluate_all(
        "els => els.map(e => e.id)"
    )
    assert len(alice_ids) == len(bob_ids) == 4 and not set(alice_ids) & set(bob_ids)
    first = alice.page.locator(f"#{alice_ids[0]}")
    first.hover()
    expect(first.locator("[data-action=edit]")).to_be_visible()
    expect(bob.page.locator(f"#{alice_ids[0]} [data-action=edit]")).to_be_hidden()


def test_times_and_day_separators_follow_the_viewers_timezone(new_user, asgi_server):
    """The same instant is the 10th in London and the 11th in Tokyo; each viewer sees their own."""
    ivy = new_user("ivy", timezone_id="Europe/London", locale="en-US")
    jon = new_user("jon", timezone_id="Asia/Tokyo", locale="en-US")
    room_url, room_id = create_room(ivy.page)
    seed(
        asgi_server,
        """
from datetime import datetime, timezone as tz
room = Room.objects.get(pk=room_id)
author = User.objects.get(username=username)
m = services.message_send(room=room, author=author, body="late").message
Message.objects.filter(pk=m.pk).update(created_at=datetime(2025, 3, 10, 23, 30, tzinfo=tz.utc))
""",
        room_id=room_id,
        username=ivy.username,
    )
    for user, day, clock in ((ivy, "March 10", "11:30 PM"), (jon, "March 11", "8:30 AM")):
        user.page.goto(room_url)
        message = article(user.page, "late")
        expect(message.locator(".day-divider")).to_contain_text(day)
        expect(message.locator(".message-time")).to_contain_text(clock)
        expect(message.locator(".message-time")).to_have_attribute(
            "title", re.compile(rf"{day}, 2025")
        )
