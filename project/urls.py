from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from project.csp_report import csp_report

urlpatterns = [
    # settings.PARLEY_CSP_REPORT_URI names this path in the policy (report-uri).
    path("csp-report/", csp_report, name="csp_report"),
    path("", include("apps.chat.urls")),
    path("profiles/", include("apps.profiles.urls")),
    path("accounts/", include("allauth.urls")),
    path("api/", include("apps.api.urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
