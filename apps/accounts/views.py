"""The "API tokens" page (issue 13): list, create (the secret shown once), revoke (after a
confirmation). The same services as the API (apps/accounts/tokens.py)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from apps.core.ratelimit import RateLimited

from . import tokens
from .forms import TokenCreateForm


def _page(request, form, *, created=None, secret=None, status=200):
    now = tokens.now()
    listed = list(tokens.token_list_for_user(user=request.user))
    for token in listed:
        # "just now" rather than "0 minutes ago" (last use is recorded once a minute anyway).
        token.used_just_now = token.last_used_at is not None and (
            now - token.last_used_at < tokens.LAST_USED_EVERY
        )
    context = {
        "tokens": listed,
        "form": form,
        "created": created,
        "secret": secret,
        "now": now,
    }
    return render(request, "accounts/token_list.html", context, status=status)


@never_cache  # the answer to a create holds the secret: no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    """GET: your tokens and the form. POST: make a token and show its secret, this once (in
    this answer only: there is no redirect, so the secret is never stored for a later page)."""
    if request.method == "GET":
        return _page(request, TokenCreateForm())
    form = TokenCreateForm(request.POST)
    if form.is_valid():
        try:
            token, secret = tokens.token_create(
                user=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at()
            )
        except ValidationError as exc:
            form.add_error("name" if exc.code != "too_many" else None, exc)
        except RateLimited as exc:
            form.add_error(None, exc.message)
        else:
            return _page(request, TokenCreateForm(), created=token, secret=secret)
    return _page(request, form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request, token_id: int):
    """GET: "Revoke this token?". POST: revoke it (its scripts and open sockets stop)."""
    try:
        if request.method == "GET":
            token = tokens.token_get_for_user(user=request.user, token_id=token_id)
            return render(request, "accounts/token_revoke.html", {"token": token})
        token = tokens.token_revoke(user=request.user, token_id=token_id)
    except tokens.TokenNotFound:  # not yours, or already revoked
        raise Http404 from None
    messages.success(request, _("The token “%(name)s” was revoked.") % {"name": token.name})
    return redirect("accounts:tokens")
