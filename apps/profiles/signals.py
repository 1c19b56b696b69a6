from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Profile


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="profiles.create_profile")
def create_profile(sender, instance, created, **kwargs):
    """Every user has exactly one profile, however the user was created."""
    if created:
        Profile.objects.get_or_create(user=instance)
