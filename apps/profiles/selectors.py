"""Reads for profiles."""

from django.db.models import CharField, QuerySet, Value
from django.db.models.functions import Coalesce, Lower, NullIf

from .models import Profile


def profile_list() -> QuerySet[Profile]:
    """Every active user's profile with its user (one query), ordered by the name people see:
    the display name, or the username when there is none, ignoring case."""
    shown_name = Coalesce(
        NullIf("display_name", Value("")), "user__username", output_field=CharField()
    )
    return (
        Profile.objects.filter(user__is_active=True)
        .select_related("user")
        .order_by(Lower(shown_name), "user__username", "pk")
    )
