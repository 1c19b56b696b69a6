from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """ "just now" for the last minute, otherwise "5 minutes ago"."""
    if value is None:
        return ""
    if timezone.now() - value < timedelta(minutes=1):
        return _("just now")
    return _("%(time)s ago") % {"time": timesince(value, depth=1)}


@register.filter
def first_line(value: str) -> str:
    """A message's first line as plain text (a reply's quote)."""
    from apps.chat.formatting import first_line as preview

    return preview(value or "")


# Counts are capped (selectors.UNREAD_CAP = 100): the cap and above read "99+".
BADGE_CAP = 100


@register.filter
def badge(value) -> str:
    """An unread count as the sidebar shows it: "" for none, "99+" from the cap on."""
    try:
        count = int(value or 0)
    except (TypeError, ValueError):
        return ""
    if count <= 0:
        return ""
    return "99+" if count >= BADGE_CAP else str(count)


@register.filter
def unread_total(sidebar) -> int:
    """The tab title's number: the unread messages of every room that is not muted."""
    if not sidebar:
        return 0
    entries = [*getattr(sidebar, "rooms", ()), *getattr(sidebar, "dms", ())]
    return sum(entry.unread for entry in entries if not entry.muted)


@register.filter
def file_size(value) -> str:
    """Bytes as B / KB / MB with one decimal, the same in every language (no locale-aware
    filter: a broadcast article is rendered once for every reader)."""
    from apps.chat.attachments import human_size

    return human_size(int(value))
