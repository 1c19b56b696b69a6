import hashlib

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

# The number of avatar-hue-N classes in static/src/app.css.
AVATAR_COLOR_COUNT = 16


class Profile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    display_name = models.CharField(_("display name"), max_length=40, blank=True)
    # Always a re-encoded square thumbnail under a random name (see services.avatar_process).
    avatar = models.ImageField(_("avatar"), upload_to="avatars/", blank=True)
    # Privacy (issue 11). Off: others always see this person offline (they still see
    # others'); off: nobody sees this person's read receipts, and they see nobody's.
    show_presence = models.BooleanField(_("show my online status"), default=True)
    send_read_receipts = models.BooleanField(_("send read receipts"), default=True)
    # Bot accounts (issue 13): a user the owner made (apps/profiles/bots.py), signing in with
    # tokens only (an unusable password, refused by the login adapter too); marked "BOT" in
    # the UI. A webhook's poster is one of these as well. Deleting the owner deletes its bots
    # (signals.delete_owned_bots: the users, not only these rows).
    is_bot = models.BooleanField(_("bot"), default=False)
    bot_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="owned_bots",
    )
    # The interface language (issue 14): a code from settings.LANGUAGES, or "" to follow the
    # browser's Accept-Language. Applied per request by apps.profiles.middleware.
    language = models.CharField(_("language"), max_length=10, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """What other people see: the display name, or the username when there is none."""
        return self.display_name or self.user.get_username()

    @property
    def initials(self) -> str:
        parts = [p for p in self.name.replace("_", " ").replace(".", " ").split() if p]
        letters = "".join(p[0] for p in parts[:2]) or self.name[:1]
        return letters.upper()

    @property
    def avatar_color_class(self) -> str:
        """The initials avatar's colour, stable per user: a class (``avatar-hue-0`` …
        ``avatar-hue-15``, defined in static/src/app.css) rather than an inline style, which
        the Content-Security-Policy refuses. Hashed so that neighbouring ids differ."""
        digest = hashlib.blake2s(str(self.user_id).encode(), digest_size=2).digest()
        return f"avatar-hue-{int.from_bytes(digest, 'big') % AVATAR_COLOR_COUNT}"
