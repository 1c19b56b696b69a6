from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """Parley's user. Custom from the first migration so fields can be added later without pain.

    Display name and avatar live on ``profiles.Profile``; this model is identity only.
    """

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
