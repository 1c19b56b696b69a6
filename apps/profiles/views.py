from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import get_language_info
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.i18n import set_language
from django_htmx.http import HttpResponseClientRefresh

from . import selectors, services
from .forms import ProfileForm

PROFILES_PER_PAGE = 100


@login_required
@require_GET
def profile_list(request):
    """Everyone you can message, by name."""
    page = Paginator(selectors.profile_list(), PROFILES_PER_PAGE).get_page(request.GET.get("page"))
    # Their presence dots: one cache get_many for the page (profiles import no chat module
    # at import time: chat imports profiles).
    from apps.chat import presence

    page.object_list = list(page.object_list)
    states = presence.states_for(page.object_list)
    for profile in page.object_list:
        profile.presence = states[profile.user_id]
    return render(request, "profiles/profile_list.html", {"page": page})


def _language_choices() -> list[tuple[str, str]]:
    """The editor's language options: "follow the browser", then each language in itself."""
    return [("", _("Same as the browser"))] + [
        (code, get_language_info(code)["name_local"].capitalize())
        for code in services.language_codes()
    ]


def _edit_context(profile, form, *, saved: bool = False) -> dict:
    return {
        "profile": profile,
        "form": form,
        "saved": saved,
        "language_choices": _language_choices(),
        "display_name_max": services.DISPLAY_NAME_MAX_LENGTH,
        "avatar_max_mb": settings.PARLEY_AVATAR_MAX_BYTES // (1024 * 1024),
    }


def _initial(profile) -> dict:
    return {
        "display_name": profile.display_name,
        "show_presence": profile.show_presence,
        "send_read_receipts": profile.send_read_receipts,
        "language": profile.language,
    }


@login_required
@require_http_methods(["GET", "POST"])
def profile_edit(request):
    """The profile editor. htmx posts get the form fragment back (errors inline, or a fresh
    form with a notice plus an out-of-band nav update); plain posts redirect or get a 400."""
    profile = request.user.profile
    page = "profiles/profile_edit.html"
    template = f"{page}#profile-form" if request.htmx else page
    if request.method == "GET":
        form = ProfileForm(initial=_initial(profile))
        return render(request, template, _edit_context(profile, form))

    form = ProfileForm(request.POST, request.FILES)
    if form.is_valid():
        language_before = profile.language
        # Left out of the post (an older form, a script): the language stays as it is.
        language = {"language": form.cleaned_data["language"]} if "language" in request.POST else {}
        try:
            services.profile_update(
                profile=profile,
                display_name=form.cleaned_data["display_name"],
                avatar=form.cleaned_data["avatar"],
                remove_avatar=form.cleaned_data["remove_avatar"],
                show_presence=form.cleaned_data["show_presence"],
                send_read_receipts=form.cleaned_data["send_read_receipts"],
                **language,
            )
        except ValidationError as exc:
            form.add_error(None, exc)  # a dict keyed by field lands on those fields
        else:
            if request.htmx and profile.language != language_before:
                # The whole page (nav, menus) changes language: htmx reloads it, with the notice
                # in the new language.
                translation.activate(
                    profile.language or translation.get_language_from_request(request)
                )
                messages.success(request, _("Your profile was saved."))
                return HttpResponseClientRefresh()
            if not request.htmx:
                messages.success(request, _("Your profile was saved."))
                return redirect("profiles:edit")
            form = ProfileForm(initial=_initial(profile))
            return render(request, template, _edit_context(profile, form, saved=True))
    # htmx swaps only 2xx responses by default: errors come back as 200 there, 400 otherwise.
    status = 200 if request.htmx else 400
    return render(request, template, _edit_context(profile, form), status=status)


@require_POST
def language_set(request):
    """The language switch (nav menu, login page): Django's ``set_language`` (the cookie, a
    redirect to ``next``), and for a signed-in user the profile's choice, through the same
    service the API's ``PATCH /api/profiles/me/`` calls."""
    response = set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in services.language_codes():
        services.profile_update(profile=request.user.profile, language=language)
    return response
