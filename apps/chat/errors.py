"""One vocabulary for what the chat's services refuse, and the one place it becomes user text.

Each edge maps these with one small function: the consumer sends ``describe(exc)`` in an error
fragment, the HTML views put it in a form error, the API's exception handler turns the classes
into statuses (``RoomNotFound``/``MessageNotFound``/``MemberNotFound`` → 404, ``NotAllowed`` →
403, Django's ``ValidationError`` → 400, ``RateLimited`` → 429). ``parse_seq`` is the one reader
of a seq or version from a client (query string, JSON), with one rule."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.core.ratelimit import RateLimited

__all__ = [
    "AttachmentNotFound",
    "MemberNotFound",
    "MessageNotFound",
    "NotAllowed",
    "RateLimited",
    "RoomNotFound",
    "ServiceError",
    "ValidationError",
    "code_of",
    "describe",
    "error_object",
    "parse_seq",
]

SEQ_MAX = 2**63 - 1  # BigIntegerField


class ServiceError(Exception):
    """A refusal with a code (for programs) and a translated message (for people)."""

    code = "error"
    default_message = gettext_lazy("That cannot be done.")

    def __init__(self, message=None):
        self.message = str(message if message is not None else self.default_message)
        super().__init__(self.message)


class RoomNotFound(ServiceError):
    """The room does not exist or the user may not see it: 404 / close 4404."""

    code = "not_found"
    default_message = gettext_lazy("No such room.")


class MessageNotFound(ServiceError):
    """No such message in this room (a message of another room is not found either)."""

    code = "not_found"
    default_message = gettext_lazy("No such message in this room.")


class AttachmentNotFound(ServiceError):
    """No such upload of yours in this room (someone else's, or already sent or removed)."""

    code = "not_found"
    default_message = gettext_lazy("No such file among your uploads in this room.")


class MemberNotFound(ValidationError):
    """The person to remove is not a member of the room: the API answers 404. A
    ValidationError (code ``member_id``) everywhere else, so the pages keep showing it as the
    settings form's error (400) as before."""

    def __init__(self, message=None):
        super().__init__(
            str(message or _("That person is not a member of this room.")), code="member_id"
        )


class NotAllowed(ServiceError):
    """The user may see the room but not do this (edit someone else's message…): 403."""

    code = "permission_denied"
    default_message = gettext_lazy("You are not allowed to do that.")


def describe(exc: Exception) -> str:
    """The user-facing text of a refusal from a service."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    if isinstance(exc, RateLimited):
        if exc.message:
            return exc.message
        return _("You are going too fast. Try again in %(s)d s.") % {"s": exc.retry_after}
    if isinstance(exc, ServiceError):
        return exc.message
    raise TypeError(f"not a service error: {exc!r}")


def code_of(exc: Exception) -> str:
    """The machine-readable code of a refusal from a service: a ``ValidationError``'s own code
    (the first error's; "invalid" when it has none), "throttled" for ``RateLimited``, else the
    ``ServiceError``'s ``code`` ("not_found", "permission_denied")."""
    if isinstance(exc, ValidationError):
        for error in exc.error_list if not hasattr(exc, "error_dict") else []:
            if isinstance(error.code, str) and error.code:
                return error.code
        return "invalid"
    if isinstance(exc, RateLimited):
        return "throttled"
    if isinstance(exc, ServiceError):
        return exc.code
    raise TypeError(f"not a service error: {exc!r}")


def error_object(code: str, message: str, fields: dict | None = None) -> dict:
    """The one error shape every machine-facing edge answers with (the API's 4xx bodies under
    ``"error"``, the websocket's JSON error frames): ``{"code", "message", "fields"}``, where
    ``fields`` maps an input field to its list of messages (``{}`` when the error is about the
    request as a whole)."""
    return {"code": code, "message": str(message), "fields": fields or {}}


def parse_seq(value: object, *, name: str = "after_seq") -> int:
    """A seq or version sent by a client: an integer or a string of ASCII digits, 0 … 2**63-1.
    Anything else (negative, fractional, "²", a bool, 5000 digits) is a ValidationError."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEQ_MAX:
        return value
    raise ValidationError(
        _("%(name)s must be a whole number from 0 to %(max)d.") % {"name": name, "max": SEQ_MAX},
        code="invalid",
    )
