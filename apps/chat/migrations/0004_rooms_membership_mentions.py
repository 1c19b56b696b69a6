"""Issue 10: room topics and the @room policy, per-membership notify settings, mentions.

Schema only, plus one data step last (no ALTER follows it, so PostgreSQL has no pending
trigger events to refuse): existing 1:1 conversations notify of every message; every other
membership keeps the column default, "mentions". And every existing membership's read pointer
moves to its room's last seq: nobody had one before (the column was 0), and without this every
user would find every room "99+" unread after the upgrade."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def existing_memberships(apps, schema_editor):
    Membership = apps.get_model("chat", "Membership")
    Room = apps.get_model("chat", "Room")
    Membership.objects.filter(room__dm_key__isnull=False).update(notify="all")
    # One UPDATE with a correlated subquery: everything already in a room counts as read.
    last_seq = Room.objects.filter(pk=OuterRef("room_id")).values("last_seq")[:1]
    Membership.objects.update(last_read_seq=Subquery(last_seq))


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_versions_required_reactions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Mention",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.BigIntegerField()),
            ],
        ),
        migrations.AddField(
            model_name="membership",
            name="notify",
            field=models.CharField(
                choices=[
                    ("all", "All messages"),
                    ("mentions", "Mentions only"),
                    ("none", "Nothing"),
                ],
                default="mentions",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="mentions_room",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="room",
            name="room_mentions",
            field=models.CharField(
                choices=[("members", "Every member"), ("owners", "Owners only")],
                default="members",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="room",
            name="topic",
            field=models.CharField(blank=True, default="", max_length=250, verbose_name="topic"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("mentions_room", True)),
                fields=["room", "seq"],
                name="chat_message_room_mentions",
            ),
        ),
        migrations.AddField(
            model_name="mention",
            name="message",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, to="chat.message"
            ),
        ),
        migrations.AddField(
            model_name="mention",
            name="room",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="chat.room"
            ),
        ),
        migrations.AddField(
            model_name="mention",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="mention",
            index=models.Index(fields=["user", "room", "seq"], name="chat_mention_user_room_seq"),
        ),
        migrations.AddConstraint(
            model_name="mention",
            constraint=models.UniqueConstraint(
                fields=("message", "user"), name="chat_mention_unique"
            ),
        ),
        migrations.RunPython(existing_memberships, migrations.RunPython.noop),
    ]
