from allauth.account.forms import ResetPasswordForm as AllauthResetPasswordForm
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.core.ratelimit import respond_429
from django import forms
from django.utils.translation import gettext_lazy

from . import login_limits, tokens
from .models import AccessToken


class ResetPasswordForm(AllauthResetPasswordForm):
    """allauth's form with Parley's reset limits (``login_limits.password_reset_begin``) in
    place of allauth's per-e-mail limit, which anyone could use to stop the owner resetting."""

    def clean_email(self) -> str:
        email = super().clean_email()
        # Bots sign in with tokens only: no reset mail for one, even if the admin gave it an
        # address (the answer stays the same as for any other address: no enumeration).
        self.users = [
            user
            for user in self.users
            if not getattr(getattr(user, "profile", None), "is_bot", False)
        ]
        return email

    def save(self, request, **kwargs) -> str:
        email = self.cleaned_data["email"]
        try:
            send = login_limits.password_reset_begin(request=request, email=email)
        except login_limits.RateLimited:
            raise ImmediateHttpResponse(respond_429(request)) from None
        if not send:
            return email  # the same answer as a sent mail: nothing to learn, nothing to flood
        return super().save(request, **kwargs)


class TokenCreateForm(forms.Form):
    """The "API tokens" page's form: a name and an expiry from a short list. What makes a
    valid name is the service's call (``tokens.token_create``)."""

    EXPIRY_CHOICES = [
        ("30", gettext_lazy("In 30 days")),
        ("90", gettext_lazy("In 90 days")),
        ("365", gettext_lazy("In 1 year")),
        ("never", gettext_lazy("Never")),
    ]

    name = forms.CharField(
        label=gettext_lazy("Name"), max_length=AccessToken.NAME_MAX_LENGTH, strip=False
    )
    expiry = forms.ChoiceField(label=gettext_lazy("Expires"), choices=EXPIRY_CHOICES, initial="90")

    def expires_at(self):
        value = self.cleaned_data["expiry"]
        return None if value == "never" else tokens.expiry_in_days(int(value))
