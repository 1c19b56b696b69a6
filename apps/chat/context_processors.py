"""The sidebar on every signed-in page (templates/base.html, chat/sidebar.html)."""

from django.utils.functional import SimpleLazyObject

from . import selectors


def sidebar(request) -> dict:
    """``sidebar``: the user's rooms and conversations with their counts (selectors.sidebar).
    Lazy: read only by a template that shows it (a full page), never by the fragments
    (history pages, forms sent back to htmx), which keep their query counts."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"sidebar": SimpleLazyObject(lambda: selectors.sidebar(user=user))}
