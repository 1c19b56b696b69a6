"""The OpenAPI schema (``/api/schema/``, YAML; ``?format=json``) and its readers, Swagger UI
(``/api/docs/``) and Redoc (``/api/redoc/``). Public, like Zulip's and Slack's API docs: the
schema describes routes, never data (``SPECTACULAR_SETTINGS``: no authentication, AllowAny).

Both readers are served from our own static files (drf-spectacular-sidecar), never a CDN, and
run under the site's CSP: drf-spectacular's templates carry an inline ``<script>``/``<style>``
(and Redoc's a Google Fonts link), so ours replace them. Swagger UI is the "split" view: its
start-up script is a second request to the same URL (``?script``), a script from 'self'. Redoc
(styled-components) inserts ``<style>`` elements at run time, which no nonce can cover: its
page alone allows inline styles — never inline scripts."""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django.conf import settings
from django.utils.decorators import method_decorator
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

__all__ = ["RedocView", "SchemaView", "SwaggerView"]


class SchemaView(SpectacularAPIView):
    pass


class SwaggerView(SpectacularSwaggerSplitView):
    template_name = "api/docs_swagger.html"
    title = "Parley API"


# A nonce in style-src would make browsers ignore 'unsafe-inline': replace the directive.
_REDOC_STYLES = {"style-src": [SELF, UNSAFE_INLINE], "worker-src": [SELF, "blob:"]}


@method_decorator(
    csp_replace(_REDOC_STYLES, REPORT_ONLY=settings.PARLEY_CSP_REPORT_ONLY), name="get"
)
class RedocView(SpectacularRedocView):
    template_name = "api/docs_redoc.html"
    title = "Parley API"
