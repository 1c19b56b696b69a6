from django import forms
from django.utils.translation import gettext_lazy as _

from apps.core.forms import RawTextField


class RoomCreateForm(forms.Form):
    """Carries the name to ``services.room_create``, which strips and judges it."""

    name = RawTextField(
        label=_("Room name"),
        widget=forms.TextInput(attrs={"placeholder": _("e.g. design-team"), "autocomplete": "off"}),
    )


class MessageForm(forms.Form):
    """The HTML fallback for sending (no websocket); validation itself lives in message_send."""

    body = RawTextField(label=_("Message"), widget=forms.Textarea)
    client_id = RawTextField(widget=forms.HiddenInput)
    reply_to = RawTextField(widget=forms.HiddenInput)
