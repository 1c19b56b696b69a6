from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from .models import AccessToken, User

admin.site.register(User, UserAdmin)


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """See and revoke (delete) personal access tokens; never make or change one here (only
    ``tokens.token_create`` makes a secret, and shows it to its owner). A delete closes the
    token's open websockets (tokens._token_deleted)."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = list_display
    exclude = ["key_hash"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@never_cache
def admin_login(request: HttpRequest) -> HttpResponse:
    """Stands in for ``AdminSite.login`` (routed at ``admin/login/`` when the admin is on).

    The admin's own form would check passwords outside allauth, so outside its rate limits and
    lock-out rules. This view authenticates nobody, whatever is posted: anonymous visitors are
    sent to the allauth login, which comes back here (``?next=``) once signed in."""
    next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = resolve_url("admin:index")
    if not request.user.is_authenticated:
        return redirect_to_login(next_url, login_url=resolve_url("account_login"))
    if admin.site.has_permission(request):
        return redirect(next_url)
    # Signed in but not staff: sending them to the login again would loop (allauth redirects a
    # signed-in user straight back to ``next``).
    raise PermissionDenied
