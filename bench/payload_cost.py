"""What the JSON frames' message object adds to each change's event (issue 13 item 5).

    .venv/bin/python bench/payload_cost.py [--number 2000]

Fills a throw-away SQLite file (never the development database) with one realistic message — a
reply with a mention, Markdown, an edit, three reactions by two people, an image attachment —
and times, on the message as ``selectors.with_timeline`` loads it: the HTML fragment
(``render_messages_oob``, what every change paid before), ``payloads.message_data``,
``realtime.change_event`` (both, plus the counting meta) and ``realtime.json_text`` (the JSON
frame the hub builds once per event per process). Prints microseconds per call and the
event's msgpack size with and without ``data``."""

import argparse
import os
import sys
import tempfile
import timeit
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="parley-payload-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["PARLEY_SQLITE_PATH"] = os.path.join(workdir, "bench.sqlite3")
    os.environ["DJANGO_MEDIA_ROOT"] = os.path.join(workdir, "media")
    os.environ["PARLEY_ATTACHMENT_ROOT"] = os.path.join(workdir, "attachments")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from io import BytesIO

    import msgpack
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from PIL import Image

    from apps.chat import attachments, payloads, realtime, selectors, services
    from apps.chat.models import Message

    settings.PARLEY_MESSAGE_RATE = (1_000_000, 10)
    settings.PARLEY_REACTION_RATE = (1_000_000, 10)
    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    alice = users.create_user(username="alice", password=None)
    bob = users.create_user(username="bob", password=None)
    bob.profile.display_name = "Bob the Builder"
    bob.profile.save()
    room = services.room_create(name="general", creator=alice)
    services.room_join(room=room, user=bob)
    first = services.message_send(room=room, author=alice, body="what do we ship?").message
    buffer = BytesIO()
    Image.new("RGB", (640, 480), (30, 120, 200)).save(buffer, "PNG")
    upload = attachments.attachment_upload(
        room=room,
        user=bob,
        upload=SimpleUploadedFile("plan.png", buffer.getvalue(), content_type="image/png"),
    )
    body = (
        "@alice the **plan** for Friday:\n\n- ship the `frames` branch\n- then the bot, see "
        "https://example.com/docs/bots and _the README_\n\nThat is all for now, more tomorrow."
    )
    message = services.message_send(
        room=room, author=bob, body=body, reply_to=first.pk, attachments=[upload.pk]
    ).message
    services.message_edit(room=room, user=bob, message_id=message.pk, body=body + " (edited)")
    for user, emoji in ((alice, "👍"), (bob, "👍"), (alice, "🎉")):
        services.reaction_add(room=room, user=user, message_id=message.pk, emoji=emoji)
    plain = services.message_send(room=room, author=alice, body="sounds good, see you then").message

    def per_call(statement) -> float:
        best = min(timeit.repeat(statement, number=args.number, repeat=5))
        return best / args.number * 1e6

    for label, pk in (("rich message", message.pk), ("plain message", plain.pk)):
        loaded = selectors.with_timeline(Message.objects.filter(pk=pk)).get()
        event = realtime.change_event(loaded)
        html = per_call(lambda loaded=loaded: realtime.render_messages_oob([loaded]))
        data = per_call(lambda loaded=loaded: payloads.message_data(loaded))
        whole = per_call(lambda loaded=loaded: realtime.change_event(loaded))
        text = per_call(lambda event=event: realtime.json_text(event))
        without = {k: v for k, v in event.items() if k != "data"}
        size_with, size_without = len(msgpack.packb(event)), len(msgpack.packb(without))
        print(f"{label}:")
        print(f"  render_messages_oob  {html:7.1f} µs  (the HTML fragment: what a change paid)")
        print(f"  message_data         {data:7.1f} µs  (+{data / html:.1%} of the fragment)")
        print(f"  change_event         {whole:7.1f} µs  (fragment + meta + data)")
        print(f"  json_text            {text:7.1f} µs  (once per event per process, JSON only)")
        print(f"  event msgpack size   {size_without} B -> {size_with} B with data")


if __name__ == "__main__":
    main()
