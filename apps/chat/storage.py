"""The attachments' storage (``STORAGES["attachments"]``, models.attachment_storage)."""

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage


class AttachmentStorage(FileSystemStorage):
    """A FileSystemStorage at ``settings.PARLEY_ATTACHMENT_ROOT`` (not MEDIA_ROOT, which the
    proxy serves publicly), following that setting when it changes (each test has its own)."""

    @property
    def base_location(self):
        return self._value_or_setting(self._location, settings.PARLEY_ATTACHMENT_ROOT)

    @property
    def location(self):
        return os.path.abspath(self.base_location)
