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
    # A code of settings.LANGUAGES or "" (follow the browser); the service judges it.
    language = forms.CharField(label=_("Language"), required=False)


class BotCreateForm(forms.Form):
    """The Bots page's form; ``bots.bot_create`` judges the values."""

    name = RawTextField(label=_("Name"))
    username = forms.CharField(label=_("Username (optional)"), required=False, max_length=150)
    avatar = forms.FileField(label=_("Avatar (optional)"), required=False)


class BotEditForm(forms.Form):
    name = RawTextField(label=_("Name"))
    avatar = forms.FileField(label=_("New avatar"), required=False)
    remove_avatar = forms.BooleanField(label=_("Remove the avatar"), required=False)
