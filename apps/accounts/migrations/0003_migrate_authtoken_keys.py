"""DRF authtoken keys become access tokens named "Migrated token" (issue 13).

``rest_framework.authtoken`` is no longer installed, so its table is read with plain SQL when
it is there (a database made before this release); a new database has none and nothing
happens. Each key keeps working as ``Authorization: Token <key>`` (or ``Bearer <key>``): the
access token stores the SHA-256 of the key, like every other token. The old table is left as
it was (README: it may be dropped once this has run)."""

import hashlib

from django.db import migrations

OLD_TABLE = "authtoken_token"
MIGRATED_NAME = "Migrated token"


def copy_authtoken_keys(apps, schema_editor) -> int:
    """Copy every row of ``authtoken_token`` (key, user_id, created) that has no access token
    with the key's hash yet; returns how many were copied."""
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return 0
    AccessToken = apps.get_model("accounts", "AccessToken")
    User = apps.get_model("accounts", "User")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote('key')}, {quote('user_id')}, {quote('created')} FROM {quote(OLD_TABLE)}"
        )
        rows = cursor.fetchall()
    users = set(User.objects.filter(pk__in=[row[1] for row in rows]).values_list("pk", flat=True))
    hashes = {
        hashlib.sha256(key.encode()).hexdigest(): (key, user_id, created)
        for key, user_id, created in rows
    }
    present = set(
        AccessToken.objects.filter(key_hash__in=list(hashes)).values_list("key_hash", flat=True)
    )
    copies = [
        AccessToken(
            user_id=user_id,
            name=MIGRATED_NAME,
            prefix=key[:8],
            key_hash=key_hash,
            created_at=created,
        )
        for key_hash, (key, user_id, created) in hashes.items()
        if key_hash not in present and user_id in users
    ]
    AccessToken.objects.bulk_create(copies)
    return len(copies)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_access_tokens")]

    operations = [migrations.RunPython(copy_authtoken_keys, migrations.RunPython.noop)]
