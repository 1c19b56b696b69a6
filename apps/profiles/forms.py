from django import forms
from django.utils.translation import gettext_lazy as _

from apps.core.forms import RawTextField


class ProfileForm(forms.Form):
    """Carries the editor's fields to ``services.profile_update``, which does the validation
    (the same rules the API gets); the form only adds what HTML needs."""

    display_name = RawTextField(label=_("Display name"))  # the service strips and judges
    avatar = forms.FileField(label=_("Avatar"), required=False)
    remove_avatar = forms.BooleanField(label=_("Remove my avatar"), required=False)
    show_presence = forms.BooleanField(label=_("Show my online status"), required=False)
    send_read_receipts = forms.BooleanField(label=_("Send read receipts"), required=False)
