"""Bot accounts (issue 13): the one module that makes, changes and deletes them.

A bot is a user with ``Profile.is_bot`` and ``Profile.bot_owner``: it has no usable password
(and the login adapter refuses bots anyway, apps/accounts/adapters.py) and no e-mail address
(so no password reset can reach it); it acts through its personal access tokens, made and
revoked here by its owner with the same ``tokens`` services as a person's. The "Bots" page and
``/api/bots/`` both call these functions. Another user's bot is not found (404), never
"forbidden": its existence is nobody else's business."""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts import tokens
from apps.core import ratelimit
from apps.core.text import Wording, clean_name

from . import services
from .models import Profile

__all__ = [
    "BotNotFound",
    "bot_create",
    "bot_delete",
    "bot_get_for_user",
    "bot_list_for_user",
    "bot_token_create",
    "bot_token_revoke",
    "bot_update",
    "is_bot",
]

USERNAME_MAX_LENGTH = 40
USERNAME_SUFFIX = "-bot"
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

_NAME = Wording(
    not_text=gettext_lazy("Enter a name for the bot."),
    empty=gettext_lazy("Enter a name for the bot."),
    too_long=gettext_lazy("A bot name can have at most %(max)d characters (it has %(len)d)."),
    forbidden=gettext_lazy("A bot name cannot contain control or invisible characters."),
)


class BotNotFound(Exception):
    """No such bot of this user (another user's bot is not found either): 404."""

    def __init__(self, message=None):
        self.message = str(message or _("No such bot."))
        super().__init__(self.message)


def is_bot(user) -> bool:
    profile = getattr(user, "profile", None)
    return bool(profile is not None and profile.is_bot)


def _clean_username(value) -> str:
    if not isinstance(value, str):
        raise ValidationError(_("Enter a valid username."), code="username")
    value = value.strip()
    if not value or len(value) > USERNAME_MAX_LENGTH or not _USERNAME_RE.match(value):
        raise ValidationError(
            _(
                "A bot's username has 1 to %(max)d letters, digits and the characters . _ - "
                "(no spaces)."
            )
            % {"max": USERNAME_MAX_LENGTH},
            code="username",
        )
    return value


def _username_taken(username: str) -> bool:
    return get_user_model().objects.filter(username__iexact=username).exists()


def _username_from_name(name: str) -> str:
    """``Deploy Bot!`` → ``deploy-bot-bot``… shortened, ASCII, then made unique (-2, -3 …)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "bot"
    base = slug[: USERNAME_MAX_LENGTH - len(USERNAME_SUFFIX) - 4].rstrip("-") + USERNAME_SUFFIX
    candidate, n = base, 1
    while _username_taken(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def bot_create(*, owner, name, username=None, avatar=None) -> Profile:
    """A new bot owned by ``owner`` (not itself a bot); returns the bot's profile. ``name`` is
    its display name; ``username`` is chosen or made from the name (``<name>-bot``, unique).
    Refused past ``PARLEY_BOTS_PER_USER_MAX`` bots and, per owner, past
    ``PARLEY_BOT_CREATE_RATE`` (RateLimited). ValidationError codes: ``name``, ``username``,
    ``avatar``, ``too_many``."""
    if is_bot(owner):
        raise ValidationError(_("A bot cannot own bots."), code="too_many")
    name = clean_name(name, max_length=services.DISPLAY_NAME_MAX_LENGTH, wording=_NAME)
    if username not in (None, ""):
        username = _clean_username(username)
        if _username_taken(username):
            raise ValidationError(_("This username is taken."), code="username")
    limit = settings.PARLEY_BOTS_PER_USER_MAX
    if Profile.objects.filter(bot_owner=owner, is_bot=True).count() >= limit:
        raise ValidationError(
            _("You have %(max)d bots already: delete one first.") % {"max": limit},
            code="too_many",
        )
    avatar_file = services.avatar_process(upload=avatar) if avatar is not None else None
    count, window = settings.PARLEY_BOT_CREATE_RATE
    try:
        ratelimit.hit(key=f"bot-create:{owner.pk}", limit=count, window=window)
    except ratelimit.RateLimited as exc:
        exc.message = _("Too many new bots. Try again in %(s)d s.") % {"s": exc.retry_after}
        raise
    try:
        with transaction.atomic():
            user = get_user_model()(username=username or _username_from_name(name), email="")
            user.set_unusable_password()
            user.save()
            profile = user.profile
            profile.is_bot = True
            profile.bot_owner = owner
            profile.display_name = name
            if avatar_file is not None:
                profile.avatar.save(avatar_file.name, avatar_file, save=False)
            profile.save()
    except IntegrityError:  # the same username taken meanwhile
        raise ValidationError(_("This username is taken."), code="username") from None
    return profile


def bot_list_for_user(*, user):
    """The bots ``user`` owns, oldest first, with their users (one query)."""
    return (
        Profile.objects.filter(bot_owner=user, is_bot=True)
        .select_related("user")
        .order_by("user__date_joined", "pk")
    )


def bot_get_for_user(*, user, bot_id) -> Profile:
    """The profile of ``user``'s bot whose user id is ``bot_id`` (BotNotFound otherwise)."""
    try:
        bot_id = int(bot_id)
    except (TypeError, ValueError):
        raise BotNotFound from None
    profile = bot_list_for_user(user=user).filter(user_id=bot_id).first()
    if profile is None:
        raise BotNotFound
    return profile


def bot_update(*, user, bot_id, name=None, avatar=None, remove_avatar: bool = False) -> Profile:
    """Rename the bot and/or change its avatar (``profiles.services.profile_update``'s rules);
    a bot always keeps a name."""
    profile = bot_get_for_user(user=user, bot_id=bot_id)
    fields = {}
    if name is not None:
        try:
            fields["display_name"] = clean_name(
                name, max_length=services.DISPLAY_NAME_MAX_LENGTH, wording=_NAME
            )
        except ValidationError as exc:
            raise ValidationError({"name": exc.error_list}) from None
    return services.profile_update(
        profile=profile, avatar=avatar, remove_avatar=remove_avatar, **fields
    )


def bot_delete(*, user, bot_id) -> None:
    """Delete the bot: its user, tokens (their sockets close), webhooks and messages."""
    profile = bot_get_for_user(user=user, bot_id=bot_id)
    profile.user.delete()


def bot_token_create(*, user, bot_id, name, expires_at=None):
    """A new token of ``user``'s bot: (token, secret), the secret shown this once."""
    profile = bot_get_for_user(user=user, bot_id=bot_id)
    return tokens.token_create(user=profile.user, name=name, expires_at=expires_at)


def bot_token_revoke(*, user, bot_id, token_id):
    profile = bot_get_for_user(user=user, bot_id=bot_id)
    return tokens.token_revoke(user=profile.user, token_id=token_id)
