from django import forms
from django.utils.translation import gettext_lazy as _

from apps.core.forms import RawTextField

from .models import Room


class RoomCreateForm(forms.Form):
    """Carries the name (and, for a private group, its members) to ``services.room_create``,
    which strips and judges them."""

    name = RawTextField(
        label=_("Room name"),
        widget=forms.TextInput(attrs={"placeholder": _("e.g. design-team"), "autocomplete": "off"}),
    )
    private = forms.BooleanField(label=_("Private group"), required=False)
    members = RawTextField(label=_("Members"))

    def member_names(self) -> list[str]:
        """The members field's usernames: separated by commas, spaces or new lines."""
        raw = self.cleaned_data.get("members") or ""
        return [name for name in raw.replace(",", " ").split() if name.strip()]


class RoomUpdateForm(forms.Form):
    """A room's name, topic and @room policy, for ``services.room_update`` (owners)."""

    name = RawTextField(label=_("Room name"))
    topic = RawTextField(label=_("Topic"))
    room_mentions = forms.ChoiceField(
        label=_("Who may mention @room"), choices=Room.RoomMentions.choices, required=False
    )


class MemberAddForm(forms.Form):
    username = RawTextField(label=_("Username"))


class NotifyForm(forms.Form):
    notify = RawTextField(label=_("Notify me about"))


class ReadForm(forms.Form):
    """The HTML fallback of the read pointer: "Mark all as read" (seq) and "Mark as unread
    from here" (seq and force)."""

    seq = RawTextField()
    force = forms.BooleanField(required=False)


class MessageForm(forms.Form):
    """The HTML fallback for sending (no websocket); validation itself lives in message_send."""

    body = RawTextField(label=_("Message"), widget=forms.Textarea)
    client_id = RawTextField(widget=forms.HiddenInput)
    reply_to = RawTextField(widget=forms.HiddenInput)


class WebhookForm(forms.Form):
    """A new webhook's name; ``webhooks.webhook_create`` judges it."""

    name = RawTextField(label=_("Name"))
