from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from . import login_limits


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up policy hooks, plus Parley's sign-in limits.

    Profiles are created by a signal on the user, not here, so users made by createsuperuser or
    the admin get one too."""

    def get_client_ip(self, request: HttpRequest) -> str:
        # One rule for every limit (allauth's, the API throttles', login_limits'): see
        # login_limits.client_address. allauth's own answers 500 for a short X-Forwarded-For.
        address = login_limits.client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine client IP address")
        return address

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        # Replaces allauth's login_failed limit, whose per-username part refuses the right
        # password too, so anyone could keep a (public) username locked out.
        username = credentials.get("username") or credentials.get("email") or ""
        try:
            self._parley_attempt = login_limits.login_attempt_begin(
                request=request, username=str(username)
            )
        except login_limits.LoginThrottled:
            raise self.validation_error("too_many_login_attempts") from None

    def authenticate(self, request: HttpRequest, **credentials: Any):
        self._parley_attempt = None
        user = super().authenticate(request, **credentials)
        attempt = self._parley_attempt
        if attempt is not None:
            if user is not None:
                attempt.succeeded()
            else:
                attempt.failed()
        return user
