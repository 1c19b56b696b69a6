from django import forms
from django.utils.translation import gettext_lazy as _


class ProfileForm(forms.Form):
    """Carries the editor's fields to ``services.profile_update``, which does the validation
    (the same rules the API gets); the form only adds what HTML needs."""

    display_name = forms.CharField(
        label=_("Display name"),
        required=False,
        strip=False,  # the service strips: one place for the rules
    )
    avatar = forms.FileField(label=_("Avatar"), required=False)
    remove_avatar = forms.BooleanField(label=_("Remove my avatar"), required=False)
