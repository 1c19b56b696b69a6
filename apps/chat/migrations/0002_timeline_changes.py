"""The timeline becomes a stream of changes: messages get a version (the seq of their latest
change), stored HTML, edit/delete times and replies; reactions get a table. Existing messages
start at version = seq with their body rendered once."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def fill_versions_and_html(apps, schema_editor):
    from apps.chat.formatting import render_markdown

    Message = apps.get_model("chat", "Message")
    batch = []
    for message in Message.objects.only("pk", "seq", "body").iterator(chunk_size=500):
        message.version = message.seq
        message.html = render_markdown(message.body)
        batch.append(message)
        if len(batch) >= 500:
            Message.objects.bulk_update(batch, ["version", "html"])
            batch = []
    if batch:
        Message.objects.bulk_update(batch, ["version", "html"])


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message", name="version", field=models.BigIntegerField(null=True)
        ),
        migrations.AddField(
            model_name="message",
            name="html",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="message",
            name="edited_at",
            field=models.DateTimeField(null=True, blank=True),
        ),
        migrations.AddField(
            model_name="message",
            name="deleted_at",
            field=models.DateTimeField(null=True, blank=True),
        ),
        migrations.AddField(
            model_name="message",
            name="reply_to",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="replies",
                to="chat.message",
            ),
        ),
        migrations.AlterField(
            model_name="message", name="body", field=models.TextField(blank=True, max_length=4000)
        ),
        migrations.RunPython(fill_versions_and_html, migrations.RunPython.noop, elidable=True),
    ]
