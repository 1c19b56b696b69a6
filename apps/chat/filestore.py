"""Stored attachment files leave storage only once the rows that named them are gone for good:
after the deleting transaction commits (a rolled-back delete keeps its files). Every way rows
disappear ends here: ``message_delete``, ``attachment_discard``, the clean-up command and
``room_delete`` collect the names of what they delete, and a user's deletion (cascading to
their uploads) does it in a ``pre_delete`` receiver (signals.py).

Storage is Django's ``default_storage`` through the model's FileFields, so django-storages (S3
…) works the same."""

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet

from .models import Attachment

__all__ = ["delete_now", "delete_on_commit", "stored_names"]

log = logging.getLogger(__name__)


def stored_names(attachments: QuerySet[Attachment]) -> list[str]:
    """The storage names (originals and thumbnails) of these attachments: one query."""
    names: list[str] = []
    for file, thumbnail in attachments.values_list("file", "thumbnail"):
        names.extend(name for name in (file, thumbnail) if name)
    return names


def delete_now(names: list[str]) -> None:
    """Delete these stored files at once (nothing names them: a failed save's leftovers)."""
    storage = Attachment._meta.get_field("file").storage
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
        except Exception:  # one unreachable file must not keep the others
            log.exception("could not delete the stored file %s", name)


def delete_on_commit(names: Iterable[str]) -> None:
    names = [name for name in names if name]
    if names:
        transaction.on_commit(lambda: delete_now(names), robust=True)
