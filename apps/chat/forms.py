from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class RoomCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Room name"),
        max_length=settings.PARLEY_ROOM_NAME_MAX_LENGTH,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": _("e.g. design-team"), "autocomplete": "off"}),
    )


class MessageForm(forms.Form):
    """The HTML fallback for sending (no websocket); validation itself lives in message_send."""

    body = forms.CharField(label=_("Message"), strip=False, required=False, widget=forms.Textarea)
    client_id = forms.CharField(required=False, widget=forms.HiddenInput)
