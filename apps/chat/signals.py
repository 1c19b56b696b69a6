"""Identity changes that open sockets must learn: published to every process's hub by realtime
(accounts and profiles do not import chat; chat listens to them)."""

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_delete, pre_save
from django.dispatch import receiver

from apps.accounts.sessions import sessions_revoked
from apps.profiles.models import Profile

from . import filestore, presence, realtime
from .models import Attachment


@receiver(sessions_revoked, dispatch_uid="chat.close_revoked_sockets")
def _sessions_revoked(sender, user_id, sessions, keep, **kwargs) -> None:
    realtime.broadcast_sessions_revoked(user_id=user_id, sessions=sessions, keep=keep)


@receiver(post_save, sender=Profile, dispatch_uid="chat.profile_changed")
def _profile_saved(sender, instance: Profile, created: bool, **kwargs) -> None:
    if created:
        return  # a new user: no socket has its profile yet
    user_id = instance.user_id
    # Robust: whatever the publish raises is logged, never a 500 for the profile save (the
    # hub's periodic re-check refreshes the profile anyway).
    transaction.on_commit(lambda: realtime.broadcast_profile_changed(user_id=user_id), robust=True)


@receiver(post_save, sender=Profile, dispatch_uid="chat.presence_privacy")
def _presence_privacy(sender, instance: Profile, created: bool, **kwargs) -> None:
    """ "Show my online status" may have changed: the presence entry says so and, if what
    others see changes, their dots update (presence.privacy_changed; a save of another field
    changes nothing there). Robust like the above: a cache outage never fails the save."""
    if created:
        return
    user_id, show = instance.user_id, instance.show_presence
    transaction.on_commit(lambda: presence.privacy_changed(user_id, show=show), robust=True)


# Read receipts (issue 11): someone switching "Send read receipts" on or off appears or
# disappears at once in the open pages of their small rooms (each room's receipts, re-read after
# commit). Only when the setting changed: one query before the save to know.
@receiver(pre_save, sender=Profile, dispatch_uid="chat.receipts_setting_before")
def _receipts_setting_before(sender, instance: Profile, **kwargs) -> None:
    if instance.pk is None:
        return
    was = Profile.objects.filter(pk=instance.pk).values_list("send_read_receipts", flat=True)
    instance._receipts_were = was.first()


@receiver(post_save, sender=Profile, dispatch_uid="chat.receipts_setting_changed")
def _receipts_setting_changed(sender, instance: Profile, created: bool, **kwargs) -> None:
    were = getattr(instance, "_receipts_were", None)
    if created or were is None or were == instance.send_read_receipts:
        return
    realtime.emit_user_receipts(instance.user_id)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat.user_files")
def _user_deleted(sender, instance, **kwargs) -> None:
    """A user's deletion cascades to their uploads (sent or not: only the uploader can attach
    a file); their stored files are deleted once that commits. (Not a post_delete receiver on
    Attachment: any listener would cost every bulk delete of attachments its fast path, and
    the services delete files themselves: filestore.py.)"""
    filestore.delete_on_commit(filestore.stored_names(Attachment.objects.filter(uploader=instance)))
