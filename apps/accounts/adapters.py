from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from apps.core.clientaddr import client_key

from . import login_limits


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up policy hooks, plus Parley's sign-in limits.

    Profiles are created by a signal on the user, not here, so users made by createsuperuser or
    the admin get one too."""

    def get_client_ip(self, request: HttpRequest) -> str:
        # One rule for every limit (allauth's, the API throttles', login_limits'): see
        # apps/core/clientaddr.py. allauth's own answers 500 for a short X-Forwarded-For.
        address = client_key(request)
        if not address:
            raise PermissionDenied("Unable to determine client IP address")
        return address

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        # allauth's e-mails greet from and thank "current_site": without django.contrib.sites
        # that is the request's host. They say the product's name instead (issue 14); the
        # subject prefix is ACCOUNT_EMAIL_SUBJECT_PREFIX.
        context = {"current_site": ParleySite(_allauth_request()), **context}
        super().send_mail(template_prefix, email, context)

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        # allauth's login_failed limit is replaced (its per-username part refuses the right
        # password too, so anyone could keep a public username locked out): the counting is
        # login_limits.authenticate_counted, in authenticate() below.
        return None

    def authenticate(self, request: HttpRequest, **credentials: Any):
        username = credentials.get("username") or credentials.get("email") or ""
        try:
            return login_limits.authenticate_counted(
                request=request,
                username=str(username),
                check=lambda: _not_a_bot(
                    super(AccountAdapter, self).authenticate(request, **credentials)
                ),
            )
        except login_limits.RateLimited:
            raise self.validation_error("too_many_login_attempts") from None


def _not_a_bot(user):
    """Bots sign in with tokens only: their password is unusable, and even one set by hand
    (the admin, a shell) does not open a session. Read from the profile, no model import
    (accounts does not import profiles at module level)."""
    profile = getattr(user, "profile", None) if user is not None else None
    if profile is not None and profile.is_bot:
        return None
    return user


class ParleySite:
    """What allauth's e-mail templates read as ``current_site``: the site name and the host."""

    def __init__(self, request: HttpRequest | None) -> None:
        self.name = settings.PARLEY_SITE_NAME
        self.domain = request.get_host() if request is not None else ""

    def __str__(self) -> str:
        return self.name


def _allauth_request() -> HttpRequest | None:
    from allauth.core import context

    return getattr(context, "request", None)
