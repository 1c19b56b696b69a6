from django.conf import settings
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from .models import Profile


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="profiles.create_profile")
def create_profile(sender, instance, created, **kwargs):
    """Every user has exactly one profile, however the user was created."""
    if created:
        Profile.objects.get_or_create(user=instance)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="profiles.delete_owned_bots")
def delete_owned_bots(sender, instance, **kwargs):
    """A user's bots go with the user: the bot users themselves (with their tokens and
    webhooks), not only their profiles, which the foreign key would cascade to alone."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(profile__bot_owner=instance, profile__is_bot=True).delete()
