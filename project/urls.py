from django.conf import settings
from django.urls import include, path

from apps.chat.hooks import webhook_incoming
from apps.profiles.views import language_set
from project.csp_report import csp_report


def build_urlpatterns(*, admin_enabled: bool) -> list:
    """The site's routes. The admin is routed only when enabled (``PARLEY_ADMIN=1``): off, its
    URLs are a plain 404, so its login form cannot be probed or used for password guessing."""
    patterns = [
        # settings.PARLEY_CSP_REPORT_URI names this path in the policy (report-uri).
        path("csp-report/", csp_report, name="csp_report"),
        # Incoming webhooks: the secret is the credential (apps/chat/hooks.py).
        path("hooks/<str:secret>/", webhook_incoming, name="webhook_incoming"),
        path("", include("apps.chat.urls")),
        path("profiles/", include("apps.profiles.urls")),
        # The language switch: Django's set_language, which also saves a signed-in user's choice.
        path("i18n/setlang/", language_set, name="set_language"),
        # Parley's own account pages (API tokens), then allauth's.
        path("accounts/", include("apps.accounts.urls")),
        path("accounts/", include("allauth.urls")),
        path("api/", include("apps.api.urls")),
    ]
    if admin_enabled:
        from django.contrib import admin

        from apps.accounts.admin import admin_login

        patterns += [
            # Before the admin's own URLs: its password form is replaced by the allauth login
            # (and allauth's rate limits); see apps.accounts.admin.admin_login.
            path("admin/login/", admin_login, name="admin-login"),
            path("admin/", admin.site.urls),
        ]
    return patterns


urlpatterns = build_urlpatterns(admin_enabled=settings.PARLEY_ADMIN)

# Django's own error answers (a 500 from a bug, a 404 no route matched, a 400 for a suspicious
# request): JSON under /api/ and /hooks/ (the API's one error shape), Django's pages elsewhere.
handler400 = "apps.api.exceptions.bad_request"
handler403 = "apps.api.exceptions.permission_denied"
handler404 = "apps.api.exceptions.page_not_found"
handler500 = "apps.api.exceptions.server_error"

if settings.DEBUG:
    from django.conf.urls.static import static

    # Avatars. Attachments are not under MEDIA_ROOT (STORAGES["attachments"]): only
    # apps/chat/files.py serves them, after the access check.
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
