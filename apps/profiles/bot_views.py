"""The "Bots" pages (issue 13): your bots, a bot's name/avatar and tokens, deleting one. The
same services as ``/api/bots/`` (apps/profiles/bots.py); another user's bot is a 404."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts import tokens
from apps.accounts.forms import TokenCreateForm
from apps.core.ratelimit import RateLimited

from . import bots
from .forms import BotCreateForm, BotEditForm

AVATAR_CODES = {"empty", "file_size", "dimensions", "invalid_image"}


def _field_of(code) -> str | None:
    if code == "username":
        return "username"
    if code == "too_many":
        return None
    if code in AVATAR_CODES:
        return "avatar"
    return "name"


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return
    for error in exc.error_list:
        form.add_error(_field_of(error.code), error)


def _bot_or_404(request, bot_id: int):
    try:
        return bots.bot_get_for_user(user=request.user, bot_id=bot_id)
    except bots.BotNotFound:
        raise Http404 from None


@login_required
@require_http_methods(["GET", "POST"])
def bot_list(request):
    """GET: your bots and the form. POST: make a bot, then its page (for its first token)."""
    form = BotCreateForm()
    status = 200
    if request.method == "POST":
        form = BotCreateForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                profile = bots.bot_create(
                    owner=request.user,
                    name=form.cleaned_data["name"],
                    username=form.cleaned_data["username"] or None,
                    avatar=form.cleaned_data["avatar"],
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            except RateLimited as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request, _("The bot “%(name)s” was made.") % {"name": profile.name}
                )
                return redirect("profiles:bot_detail", bot_id=profile.user_id)
        status = 400
    context = {
        "bots": bots.bot_list_for_user(user=request.user),
        "form": form,
        "bots_max": settings.PARLEY_BOTS_PER_USER_MAX,
    }
    return render(request, "profiles/bot_list.html", context, status=status)


def _detail(
    request, profile, *, edit_form=None, token_form=None, created=None, secret=None, status=200
):
    context = {
        "bot": profile,
        "edit_form": edit_form or BotEditForm(initial={"name": profile.display_name}),
        "token_form": token_form or TokenCreateForm(),
        "tokens": tokens.token_list_for_user(user=profile.user),
        "created": created,
        "secret": secret,
        "now": tokens.now(),
    }
    return render(request, "profiles/bot_detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def bot_detail(request, bot_id: int):
    """GET: the bot's page. POST: its new name and/or avatar."""
    profile = _bot_or_404(request, bot_id)
    if request.method == "GET":
        return _detail(request, profile)
    form = BotEditForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            bots.bot_update(
                user=request.user,
                bot_id=bot_id,
                name=form.cleaned_data["name"],
                avatar=form.cleaned_data["avatar"],
                remove_avatar=form.cleaned_data["remove_avatar"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("The bot was saved."))
            return redirect("profiles:bot_detail", bot_id=bot_id)
    profile.refresh_from_db()
    return _detail(request, profile, edit_form=form, status=400)


@never_cache  # the answer holds the secret: no cache may keep it
@login_required
@require_POST
def bot_token_create(request, bot_id: int):
    """Make a token for the bot and show its secret, this once (no redirect)."""
    profile = _bot_or_404(request, bot_id)
    form = TokenCreateForm(request.POST)
    if form.is_valid():
        try:
            token, secret = bots.bot_token_create(
                user=request.user,
                bot_id=bot_id,
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
            )
        except ValidationError as exc:
            form.add_error("name" if exc.code != "too_many" else None, exc)
        except RateLimited as exc:
            form.add_error(None, exc.message)
        else:
            return _detail(request, profile, created=token, secret=secret)
    return _detail(request, profile, token_form=form, status=400)


@login_required
@require_POST
def bot_token_revoke(request, bot_id: int, token_id: int):
    try:
        token = bots.bot_token_revoke(user=request.user, bot_id=bot_id, token_id=token_id)
    except (bots.BotNotFound, tokens.TokenNotFound):
        raise Http404 from None
    messages.success(request, _("The token “%(name)s” was revoked.") % {"name": token.name})
    return redirect("profiles:bot_detail", bot_id=bot_id)


@login_required
@require_http_methods(["GET", "POST"])
def bot_delete(request, bot_id: int):
    """GET: "Delete this bot?". POST: delete it (its tokens, webhooks and messages go)."""
    profile = _bot_or_404(request, bot_id)
    if request.method == "GET":
        return render(request, "profiles/bot_delete.html", {"bot": profile})
    bots.bot_delete(user=request.user, bot_id=bot_id)
    messages.success(request, _("The bot “%(name)s” was deleted.") % {"name": profile.name})
    return redirect("profiles:bots")
