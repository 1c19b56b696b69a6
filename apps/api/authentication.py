"""The API's token authentication: personal access tokens (apps/accounts/tokens.py).

``Authorization: Bearer <secret>``, and ``Authorization: Token <secret>`` — the scheme of DRF's
``TokenAuthentication``, which this replaces: the keys it issued were migrated to access
tokens (accounts migration 0003), so existing scripts keep working unchanged.

A drop-in for ``rest_framework.authentication.TokenAuthentication`` (same ``authenticate`` and
``authenticate_header``): any view that listed DRF's class lists this one instead. DRF's
would now fail, as ``rest_framework.authtoken`` is no longer installed — the system check
below says so at start-up rather than with a 500 at the first request."""

from django.core import checks
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from apps.accounts import tokens
from apps.profiles.middleware import saved_language

__all__ = ["AccessTokenAuthentication"]


class AccessTokenAuthentication(authentication.BaseAuthentication):
    """``request.user`` is the token's user, ``request.auth`` the ``AccessToken``. A missing
    header (or another scheme) is "not authenticated by me" (None: the next class, e.g. the
    session, may); a token header that is malformed, unknown, revoked or expired, or whose
    user is deactivated, is a 401 — never a fallback to the session."""

    keyword = "Bearer"
    invalid = _("Invalid, expired or revoked token.")
    malformed = _("Invalid Authorization header: send “Bearer <token>”.")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        try:
            secret = tokens.secret_from_authorization(header)
        except tokens.BadCredentials:
            raise exceptions.AuthenticationFailed(self.malformed) from None
        if secret is None:
            return None
        token = tokens.token_lookup(secret)
        if token is None:
            raise exceptions.AuthenticationFailed(self.invalid)
        # The answers (error messages) in the token owner's saved language: the middleware
        # that does this for sessions runs before DRF knows the user. Without one saved,
        # Accept-Language (LocaleMiddleware) stands.
        language = saved_language(token.user)
        if language:
            translation.activate(language)
            request._request.LANGUAGE_CODE = language
        return token.user, token

    def authenticate_header(self, request) -> str:
        # The 401's WWW-Authenticate: DRF asks the first authentication class.
        return self.keyword


@checks.register(checks.Tags.security)
def drf_token_authentication_is_not_used(app_configs, **kwargs):
    """DRF's ``TokenAuthentication`` reads ``rest_framework.authtoken``'s table, which is gone:
    a view still naming it would answer 500 to every token. Error at start-up instead."""
    from django.urls import get_resolver

    found = []

    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)
                continue
            view = getattr(pattern.callback, "cls", None) or getattr(
                pattern.callback, "view_class", None
            )
            classes = getattr(view, "authentication_classes", None) or ()
            if any(
                isinstance(cls, type) and issubclass(cls, authentication.TokenAuthentication)
                for cls in classes
            ):
                found.append(f"{view.__module__}.{view.__qualname__}")

    walk(get_resolver().url_patterns)
    from rest_framework.settings import api_settings

    if any(
        issubclass(cls, authentication.TokenAuthentication)
        for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES
    ):
        found.append("REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES']")
    return [
        checks.Error(
            f"{where} uses rest_framework's TokenAuthentication.",
            hint="Use apps.api.authentication.AccessTokenAuthentication (same API): DRF's "
            "authtoken app is not installed; its keys became access tokens.",
            id="parley.E013",
        )
        for where in sorted(set(found))
    ]
