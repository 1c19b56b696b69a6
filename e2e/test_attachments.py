"""Attachments in real browsers (issue 12): a pasted image arrives in the other browser with its
thumbnail; uploads show real progress; a file over the limit is refused in the page without a
request; the image viewer opens and gives focus back; a file removed before sending is not sent
(and is deleted on the server). Screenshots of the composer, a message and the viewer, desktop
and phone, go to /work/notes/shots/."""

import base64
import io
import os
import re
from pathlib import Path

from pages import create_room, wait_connected
from PIL import Image
from playwright.sync_api import expect

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SHOTS_DIR = Path(os.environ.get("PARLEY_SHOTS_DIR", "/work/notes/shots"))


# --- Helpers ------------------------------------------------------------------------------------
def png_bytes(width: int = 240, height: int = 160) -> bytes:
    """A real PNG (the server decides the kind from the content): two coloured halves."""
    image = Image.new("RGB", (width, height), (79, 70, 229))
    image.paste((16, 185, 129), (width // 2, 0, width, height))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def shoot(page, name: str) -> Path:
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def wait_until(page, expression: str, timeout_ms: int = 15_000) -> None:
    """Poll ``expression`` in the page until it is true (wait_for_function would eval a
    string, which the page's CSP forbids)."""
    for _ in range(timeout_ms // 50):
        if page.evaluate(f"() => !!({expression})"):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never true: {expression}")


def attach(page, *files: dict) -> None:
    """Files chosen through the attach button's (hidden) file input."""
    page.locator("#attach-input").set_input_files(list(files))


def paste_png(page, data: bytes, name: str = "image.png") -> None:
    """A paste into the composer whose clipboard holds one PNG file (a screenshot)."""
    page.locator("#composer-body").focus()
    page.evaluate(
        """([b64, name]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const data = new DataTransfer();
          data.items.add(new File([bytes], name, { type: "image/png" }));
          const paste = new ClipboardEvent(
            "paste", { clipboardData: data, bubbles: true, cancelable: true });
          document.getElementById("composer-body").dispatchEvent(paste);
        }""",
        [base64.b64encode(data).decode(), name],
    )


def tray_item(page, name: str):
    return page.locator("#attachment-list > li", has_text=name)


def throttle_uploads(page, bytes_per_second: int):
    """Chromium's own network throttling (DevTools protocol): uploads crawl, downloads not."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )
    return cdp


def unthrottle(cdp) -> None:
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


def progress_midway(page, name: str, *, at_least: float = 0) -> None:
    """The upload's <progress> shows a value strictly between 0 (or ``at_least`` of the way)
    and its max."""
    wait_until(
        page,
        f"""Array.from(document.querySelectorAll("#attachment-list > li")).some((li) => {{
              const bar = li.querySelector("progress");
              return li.querySelector(".tray-name").textContent === {name!r} &&
                li.dataset.state === "uploading" && bar.value > 0 &&
                bar.value >= {at_least} * bar.max && bar.value < bar.max;
            }})""",
    )


def send(page, text: str = "", *, refused_left: int = 0) -> None:
    composer = page.locator("#composer-body")
    composer.fill(text)
    composer.press("Enter")
    # Acknowledged: the server's article replaced the pending copy, and the tray is empty
    # (but for the files refused before uploading, which stay with their error).
    expect(page.locator("#pending-list > article")).to_have_count(0)
    expect(page.locator("#attachment-list > li")).to_have_count(refused_left)
    expect(page.locator("#attachment-list > li:not([data-state=failed])")).to_have_count(0)
    if not refused_left:
        expect(page.locator("#attachment-tray")).to_be_hidden()


def attachment_requests(page) -> list[str]:
    seen: list[str] = []
    page.on(
        "request",
        lambda r: seen.append(f"{r.method} {r.url}") if "/attachments/" in r.url else None,
    )
    return seen


# --- The tests ----------------------------------------------------------------------------------
def test_a_pasted_image_arrives_in_the_other_browser_with_its_thumbnail(new_user):
    alice = new_user("alice")
    bob = new_user("bob")
    room_url = create_room(alice.page, "files")
    bob.page.goto(room_url)
    wait_connected(alice.page)
    wait_connected(bob.page)

    paste_png(alice.page, png_bytes())
    item = alice.page.locator("#attachment-list > li")
    expect(item).to_have_count(1)
    # A screenshot's "image.png" gets a name that tells pastes apart.
    expect(item.locator(".tray-name")).to_have_text(re.compile(r"^Pasted image .+\.png$"))
    expect(item).to_have_attribute("data-state", "done")
    name = item.locator(".tray-name").inner_text()
    expect(item.locator(".tray-thumb img")).not_to_have_js_property("naturalWidth", 0)

    # Bob's thumbnails are held back a moment: the message must take its final size before the
    # image arrives (nothing below it jumps when it loads).
    held = []
    bob.page.route("**/files/*/thumbnail/", lambda route: held.append(route))
    with bob.page.expect_request(lambda r: r.url.endswith("/thumbnail/")):
        send(alice.page, "the screenshot you asked for")

    at_bob = bob.page.locator("#message-list > article", has_text="the screenshot you asked for")
    thumb = at_bob.locator(".attachment-image")
    expect(thumb).to_have_count(1)
    expect(thumb).to_have_attribute("data-name", name)
    img = thumb.locator("img")
    expect(img).to_have_attribute("alt", name)
    expect(img).to_have_js_property("naturalWidth", 0)
    width, height = int(img.get_attribute("width")), int(img.get_attribute("height"))
    before = img.bounding_box()
    assert before and before["width"] > 100, before
    assert abs(before["height"] - before["width"] * height / width) < 2, (before, width, height)
    assert held, "the thumbnail was requested"
    for route in held:
        route.continue_()
    expect(img).to_have_js_property("complete", True)
    expect(img).not_to_have_js_property("naturalWidth", 0)
    assert img.bounding_box() == before
    # And the sender has the same article (not a second copy).
    expect(alice.page.locator("#message-list > article .attachment-image")).to_have_count(1)


def test_upload_progress_is_visible_and_send_waits_for_the_upload(new_user):
    carol = new_user("carol")
    create_room(carol.page, "progress")
    wait_connected(carol.page)
    requests = attachment_requests(carol.page)
    cdp = throttle_uploads(carol.page, 400 * 1024)  # 2 MB: about five seconds

    attach(
        carol.page,
        {"name": "big.bin", "mimeType": "application/octet-stream", "buffer": os.urandom(2 << 20)},
    )
    item = tray_item(carol.page, "big.bin")
    expect(item).to_have_attribute("data-state", "uploading")
    expect(carol.page.get_by_role("progressbar", name="Uploading big.bin")).to_be_visible()
    progress_midway(carol.page, "big.bin")
    expect(item.locator(".tray-percent")).to_have_text(re.compile(r"^([1-9]|[1-9]\d) %$"))

    # Send waits, and says why; nothing is sent meanwhile.
    send_button = carol.page.locator("#composer-send")
    expect(send_button).to_have_attribute("aria-disabled", "true")
    wait = carol.page.get_by_test_id("attachment-wait")
    expect(wait).to_have_text("Waiting for 1 upload to finish…")
    carol.page.locator("#composer-body").fill("the archive")
    carol.page.locator("#composer-body").press("Enter")
    expect(carol.page.locator("#pending-list > article")).to_have_count(0)
    expect(carol.page.locator("#composer-body")).to_have_value("the archive")

    expect(item).to_have_attribute("data-state", "done", timeout=30_000)
    unthrottle(cdp)
    expect(wait).to_be_hidden()
    expect(send_button).not_to_have_attribute("aria-disabled", "true")
    assert [r for r in requests if r.startswith("POST")] and len(requests) == 1, requests

    carol.page.locator("#composer-body").press("Enter")
    expect(carol.page.locator("#pending-list > article")).to_have_count(0)
    card = carol.page.locator("#message-list > article", has_text="the archive").locator(
        ".attachment-file"
    )
    expect(card).to_have_attribute("download", "big.bin")
    expect(card.locator(".attachment-meta")).to_contain_text("2")
    expect(carol.page.locator("#attachment-tray")).to_be_hidden()


def test_a_file_over_the_limit_is_refused_in_the_page_without_a_request(new_user):
    dave = new_user("dave")
    create_room(dave.page, "limit")
    wait_connected(dave.page)
    limit = int(dave.page.locator("#composer").get_attribute("data-attachment-max-bytes"))
    assert 0 < limit <= 8 << 20, "the e2e server runs with a small PARLEY_ATTACHMENT_MAX_BYTES"
    requests = attachment_requests(dave.page)

    attach(
        dave.page,
        {"name": "huge.iso", "mimeType": "application/octet-stream", "buffer": b"\0" * (limit + 1)},
    )
    item = tray_item(dave.page, "huge.iso")
    expect(item).to_have_attribute("data-state", "failed")
    expect(item.locator(".tray-error")).to_have_text(
        f"Too large ({limit + 1} B): files can be at most {limit} B."
    )
    expect(item.locator("progress")).to_be_hidden()
    # A failed file is not sent: the message goes without it (and says nothing of it).
    send_text = "no file with this one"
    dave.page.locator("#composer-body").fill(send_text)
    dave.page.locator("#composer-body").press("Enter")
    article = dave.page.locator("#message-list > article", has_text=send_text)
    expect(article).to_have_count(1)
    expect(article.locator(".attachments")).to_have_count(0)
    # The refusal stays until removed.
    expect(item).to_be_visible()
    item.get_by_role("button", name="Remove huge.iso").click()
    expect(dave.page.locator("#attachment-tray")).to_be_hidden()
    assert requests == [], requests


def test_a_file_the_server_refuses_shows_the_servers_reason_on_its_line(new_user):
    kate = new_user("kate")
    create_room(kate.page, "refusal")
    wait_connected(kate.page)
    with kate.page.expect_response(
        lambda r: r.request.method == "POST" and "/attachments/" in r.url
    ) as answer:
        attach(kate.page, {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""})
    assert answer.value.status == 400
    empty = tray_item(kate.page, "empty.txt")
    expect(empty).to_have_attribute("data-state", "failed")
    expect(empty.locator(".tray-error")).to_have_text("The file is empty.")
    expect(empty.locator(".tray-error")).to_have_attribute("role", "alert")
    # The next file is not held up by its failed neighbour, and only it is sent.
    attach(kate.page, {"name": "fine.txt", "mimeType": "text/plain", "buffer": b"fine\n"})
    expect(tray_item(kate.page, "fine.txt")).to_have_attribute("data-state", "done")
    send(kate.page, "one of two", refused_left=1)
    article = kate.page.locator("#message-list > article", has_text="one of two")
    expect(article.locator(".attachment-name")).to_have_text(["fine.txt"])


def test_files_past_the_per_message_limit_are_not_added(new_user):
    jane = new_user("jane")
    create_room(jane.page, "many")
    wait_connected(jane.page)
    most = int(jane.page.locator("#composer").get_attribute("data-attachments-max"))
    attach(
        jane.page,
        *(
            {"name": f"part-{i:02}.txt", "mimeType": "text/plain", "buffer": b"part\n"}
            for i in range(most + 1)
        ),
    )
    extra = tray_item(jane.page, f"part-{most:02}.txt")
    expect(extra).to_have_attribute("data-state", "failed")
    expect(extra.locator(".tray-error")).to_have_text(
        f"Not added: at most {most} files per message."
    )
    expect(jane.page.locator("#attachment-list > li[data-state=done]")).to_have_count(most)
    send(jane.page, "all the parts", refused_left=1)
    cards = jane.page.locator("#message-list > article", has_text="all the parts")
    expect(cards.locator(".attachment-file")).to_have_count(most)


def test_the_viewer_opens_on_click_and_escape_gives_focus_back_to_the_thumbnail(new_user):
    erin = new_user("erin")
    create_room(erin.page, "viewer")
    wait_connected(erin.page)
    attach(erin.page, {"name": "chart.png", "mimeType": "image/png", "buffer": png_bytes(800, 500)})
    expect(tray_item(erin.page, "chart.png")).to_have_attribute("data-state", "done")
    send(erin.page)  # files only: no text

    article = erin.page.locator("#message-list > article").last
    thumb = article.get_by_role("button", name="chart.png")
    expect(thumb.locator("img")).not_to_have_js_property("naturalWidth", 0)
    viewer = erin.page.get_by_test_id("attachment-viewer")

    thumb.click()
    expect(viewer).to_be_visible()
    expect(erin.page.locator("#viewer-name")).to_have_text("chart.png")
    full = erin.page.locator("#viewer-image")
    expect(full).to_have_js_property("naturalWidth", 800)  # the original, not the thumbnail
    download = erin.page.get_by_role("link", name="Download")
    expect(download).to_have_attribute("download", "chart.png")
    expect(download).to_have_attribute("href", thumb.get_attribute("data-viewer"))
    expect(erin.page.locator("#viewer-close")).to_be_focused()
    erin.page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(thumb).to_be_focused()
    shoot(erin.page, "attachments-thumbnail-focused-desktop")  # the focus ring, after Escape

    # The keyboard way: Enter on the focused thumbnail; Close closes.
    erin.page.keyboard.press("Enter")
    expect(viewer).to_be_visible()
    erin.page.get_by_role("button", name="Close").click()
    expect(viewer).to_be_hidden()
    expect(thumb).to_be_focused()


def test_files_removed_before_sending_are_not_sent(new_user):
    frank = new_user("frank")
    create_room(frank.page, "remove")
    wait_connected(frank.page)

    attach(
        frank.page,
        {"name": "keep.txt", "mimeType": "text/plain", "buffer": b"kept\n"},
        {"name": "drop.txt", "mimeType": "text/plain", "buffer": b"dropped\n"},
    )
    expect(tray_item(frank.page, "keep.txt")).to_have_attribute("data-state", "done")
    dropped = tray_item(frank.page, "drop.txt")
    expect(dropped).to_have_attribute("data-state", "done")
    dropped_id = dropped.get_attribute("data-attachment-id")

    # A finished upload: removed from the tray and deleted on the server.
    with frank.page.expect_response(
        lambda r: r.request.method == "DELETE" and f"/attachments/{dropped_id}/" in r.url
    ) as deleted:
        dropped.get_by_role("button", name="Remove drop.txt").click()
    assert deleted.value.status == 204
    expect(dropped).to_have_count(0)
    # Focus went to the neighbour's remove button, not to the page.
    expect(frank.page.get_by_role("button", name="Remove keep.txt")).to_be_focused()

    # An upload on its way: aborted.
    cdp = throttle_uploads(frank.page, 200 * 1024)
    attach(
        frank.page,
        {"name": "slow.bin", "mimeType": "application/octet-stream", "buffer": os.urandom(1 << 20)},
    )
    slow = tray_item(frank.page, "slow.bin")
    progress_midway(frank.page, "slow.bin")
    slow.get_by_role("button", name="Remove slow.bin").click()
    expect(slow).to_have_count(0)
    unthrottle(cdp)
    expect(frank.page.locator("#composer-send")).not_to_have_attribute("aria-disabled", "true")

    send(frank.page, "only one file")
    article = frank.page.locator("#message-list > article", has_text="only one file")
    expect(article.locator(".attachment-file")).to_have_count(1)
    expect(article.locator(".attachment-name")).to_have_text("keep.txt")
    # The removed upload is gone on the server too.
    assert frank.page.request.get(f"/files/{dropped_id}/drop.txt").status == 404


def test_a_refused_message_gives_back_its_text_and_its_files(new_user, asgi_server):
    """The server refuses the message (here: one of its uploads is gone meanwhile): the
    pending copy named the file, and both the text and the tray come back."""
    ivan = new_user("ivan")
    create_room(ivan.page, "refused")
    wait_connected(ivan.page)
    attach(ivan.page, {"name": "gone.txt", "mimeType": "text/plain", "buffer": b"soon gone\n"})
    item = tray_item(ivan.page, "gone.txt")
    expect(item).to_have_attribute("data-state", "done")
    gone_id = int(item.get_attribute("data-attachment-id"))
    asgi_server.django(
        f"from apps.chat.models import Attachment; Attachment.objects.filter(pk={gone_id}).delete()"
    )

    # Watch the pending copy as it goes by (it lasts one round trip).
    ivan.page.evaluate(
        """() => {
          window.__pendingFiles = [];
          new MutationObserver(() => {
            document.querySelectorAll("#pending-list .pending-files li").forEach(
              (li) => window.__pendingFiles.push(li.textContent));
          }).observe(document.getElementById("pending-list"), { childList: true });
        }"""
    )
    composer = ivan.page.locator("#composer-body")
    composer.fill("see attached")
    composer.press("Enter")
    expect(ivan.page.locator("#composer-error")).to_have_text(re.compile(r"\S"))
    expect(composer).to_have_value("see attached")
    expect(tray_item(ivan.page, "gone.txt")).to_have_attribute("data-state", "done")
    expect(ivan.page.locator("#pending-list > article")).to_have_count(0)
    expect(ivan.page.locator("#message-list > article")).to_have_count(0)
    assert ivan.page.evaluate("window.__pendingFiles") == ["gone.txt"]


def test_files_dragged_onto_the_room_show_the_overlay_and_are_attached_on_drop(new_user):
    hana = new_user("hana")
    create_room(hana.page, "drop")
    wait_connected(hana.page)
    files = hana.page.evaluate_handle(
        """() => {
          const data = new DataTransfer();
          data.items.add(new File(["minutes"], "minutes.txt", { type: "text/plain" }));
          return data;
        }"""
    )
    overlay = hana.page.get_by_test_id("drop-overlay")
    expect(overlay).to_be_hidden()
    hana.page.dispatch_event("#message-scroller", "dragenter", {"dataTransfer": files})
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("Drop files to attach them")
    # Dragged away again: the overlay goes, nothing is attached.
    hana.page.dispatch_event("#message-scroller", "dragleave", {"dataTransfer": files})
    expect(overlay).to_be_hidden()
    expect(hana.page.locator("#attachment-list > li")).to_have_count(0)

    hana.page.dispatch_event("#message-scroller", "dragenter", {"dataTransfer": files})
    hana.page.dispatch_event("#drop-overlay", "dragover", {"dataTransfer": files})
    hana.page.dispatch_event("#drop-overlay", "drop", {"dataTransfer": files})
    expect(overlay).to_be_hidden()
    expect(tray_item(hana.page, "minutes.txt")).to_have_attribute("data-state", "done")
    expect(hana.page.locator("#composer-body")).to_be_focused()
    send(hana.page)
    card = hana.page.locator("#message-list > article").last.locator(".attachment-file")
    expect(card.locator(".attachment-name")).to_have_text("minutes.txt")


def test_screenshots_of_the_composer_a_message_and_the_viewer(new_user):
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        gina = new_user("gina", viewport=viewport)
        create_room(gina.page, "shots")
        wait_connected(gina.page)
        gina.page.locator("#composer-body").fill("Here are the slides and the photo")
        attach(
            gina.page,
            {"name": "sunset.png", "mimeType": "image/png", "buffer": png_bytes(900, 600)},
            {"name": "portrait.png", "mimeType": "image/png", "buffer": png_bytes(500, 1000)},
            {
                "name": "Quarterly review — final draft (v3).pdf",
                "mimeType": "application/pdf",
                "buffer": b"%PDF-1.4\n" + os.urandom(180_000),
            },
        )
        expect(tray_item(gina.page, "sunset.png")).to_have_attribute("data-state", "done")
        expect(tray_item(gina.page, "Quarterly review")).to_have_attribute("data-state", "done")
        cdp = throttle_uploads(gina.page, 250 * 1024)
        attach(
            gina.page,
            {"name": "recording.webm", "mimeType": "video/webm", "buffer": os.urandom(2 << 20)},
        )
        progress_midway(gina.page, "recording.webm", at_least=0.4)
        shoot(gina.page, f"attachments-composer-{label}")
        tray_item(gina.page, "recording.webm").get_by_role("button").click()
        unthrottle(cdp)

        send(gina.page, "Here are the slides and the photo")
        article = gina.page.locator("#message-list > article").last
        for img in article.locator(".attachment-image img").all():
            expect(img).not_to_have_js_property("naturalWidth", 0)
        expect(article.locator(".attachment-file")).to_have_count(1)
        article.locator(".attachment-file").focus()  # the focus ring, in the picture
        shoot(gina.page, f"attachments-message-{label}")

        article.locator(".attachment-image").first.click()
        expect(gina.page.locator("#viewer-image")).to_have_js_property("naturalWidth", 900)
        shoot(gina.page, f"attachments-viewer-{label}")
        gina.page.keyboard.press("Escape")
        expect(gina.page.get_by_test_id("attachment-viewer")).to_be_hidden()
        gina.context.close()
