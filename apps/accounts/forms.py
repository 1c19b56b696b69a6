from allauth.account.forms import ResetPasswordForm as AllauthResetPasswordForm
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.core.ratelimit import respond_429

from . import login_limits


class ResetPasswordForm(AllauthResetPasswordForm):
    """allauth's form with Parley's reset limits (``login_limits.password_reset_begin``) in
    place of allauth's per-e-mail limit, which anyone could use to stop the owner resetting."""

    def save(self, request, **kwargs) -> str:
        email = self.cleaned_data["email"]
        try:
            send = login_limits.password_reset_begin(request=request, email=email)
        except login_limits.RateLimited:
            raise ImmediateHttpResponse(respond_429(request)) from None
        if not send:
            return email  # the same answer as a sent mail: nothing to learn, nothing to flood
        return super().save(request, **kwargs)
