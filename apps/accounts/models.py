from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """Parley's user. Custom from the first migration so fields can be added later without pain.

    Display name and avatar live on ``profiles.Profile``; this model is identity only.
    """

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class AccessToken(models.Model):
    """A personal access token: ``Authorization: Bearer <secret>`` for the API and the
    websocket (apps/accounts/tokens.py). Only the SHA-256 of the secret is stored: the secret
    is shown once, when the token is made. Revoking deletes the row."""

    NAME_MAX_LENGTH = 64

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens"
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    # The secret's first characters, to tell tokens apart in a list ("pat_AbCd1234…").
    prefix = models.CharField(max_length=16)
    # hex SHA-256 of the whole secret: the lookup key (a random 256-bit secret needs no salt
    # and no slow hash).
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    # Written at most once a minute per token (tokens.LAST_USED_EVERY), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"], name="accesstoken_user_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
