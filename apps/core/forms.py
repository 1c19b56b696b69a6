"""Form fields for text the services validate.

Django's ``CharField`` refuses NUL itself ("Null characters are not allowed.") and then drops
the field from ``cleaned_data``; a view reading ``cleaned_data["body"]`` got a KeyError (a
500). These fields hand the raw text on, so the service's one rule (apps/core/text.py) decides
and its message is the one people see, as on the API and the websocket."""

from django import forms
from django.core.validators import ProhibitNullCharactersValidator


class RawTextField(forms.CharField):
    """Text passed on as typed: not stripped, no length or NUL check here (the service has
    them). ``required`` defaults to False so that "empty" is the service's message too."""

    def __init__(self, **kwargs):
        kwargs.setdefault("strip", False)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.validators = [
            v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)
        ]
