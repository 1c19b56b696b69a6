"""Migration 0004's data step, run for real: from 0003 with rooms, messages and memberships made
through the historical models, forward to 0004."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("chat", "0003_versions_required_reactions")]
AFTER = [("chat", "0004_rooms_membership_mentions")]


@pytest.fixture
def executor(transactional_db):
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    yield executor
    executor = MigrationExecutor(connection)  # back to the current schema for the next tests
    executor.migrate(leaves)


def test_0004_marks_what_was_there_read_and_dms_notify_all(executor):
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User, Room = old.get_model("accounts", "User"), old.get_model("chat", "Room")
    Membership, Message = old.get_model("chat", "Membership"), old.get_model("chat", "Message")
    ann, ben = (User.objects.create(username=name) for name in ("ann", "ben"))
    busy = Room.objects.create(name="busy", last_seq=250)
    quiet = Room.objects.create(name="quiet", last_seq=0)
    dm = Room.objects.create(is_private=True, dm_key=f"{ann.pk}:{ben.pk}", last_seq=7)
    for seq in range(1, 4):
        Message.objects.create(room=busy, author=ben, seq=seq, version=seq, body="x")
    for room in (busy, quiet, dm):
        for user in (ann, ben):
            Membership.objects.create(room=room, user=user)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    rows = {
        (row["room__name"] or "dm", row["user__username"]): (row["last_read_seq"], row["notify"])
        for row in new.get_model("chat", "Membership").objects.values(
            "room__name", "user__username", "last_read_seq", "notify"
        )
    }
    assert rows == {
        ("busy", "ann"): (250, "mentions"),
        ("busy", "ben"): (250, "mentions"),
        ("quiet", "ann"): (0, "mentions"),
        ("quiet", "ben"): (0, "mentions"),
        ("dm", "ann"): (7, "all"),
        ("dm", "ben"): (7, "all"),
    }


def test_the_models_have_no_change_without_a_migration(db):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
