"""The one rule for text people type: room names, display names and message bodies.

Every edge (HTML form, API, websocket) hands the raw value to a service, and every service
cleans it here, so the three can never disagree about what is empty, too long or forbidden.

- **Everywhere**: a string; NUL and lone surrogates are refused (PostgreSQL cannot store NUL,
  a lone surrogate cannot even be encoded); surrounding whitespace is stripped; a text with no
  visible character — only spaces, zero-width characters, fillers — is *empty*, with the same
  error as whitespace alone.
- **Names** (one line, shown inline next to other people's names): no control characters
  (newlines, tabs), no line/paragraph separators, no bidi controls (marks, embeddings,
  overrides, isolates) and no invisible format character on its own. Joiners stay allowed
  where they join something visible: ZWJ/ZWNJ between two visible characters (emoji
  sequences 👩‍💻, Persian and Indic spelling), variation selectors and emoji tag sequences
  after one.
- **Bodies** (a block of their own): newlines, tabs and carriage returns (browsers submit
  CRLF) stay. Other control characters are refused. Bidi marks, embeddings and isolates stay:
  Hebrew, Arabic and Persian writers use them to mix directions correctly, and the message's
  own block ends their effect. Only the two explicit overrides (U+202D, U+202E) are refused:
  natural text never needs them, and they are the tool for spoofing ("gnp.exe").

Categories come from ``unicodedata``. Python's Unicode database lags behind new emoji, so
unassigned (Cn) and private-use (Co) characters count as visible rather than being refused.
"""

import re
import unicodedata
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.translation import gettext as _

__all__ = [
    "Wording",
    "clean_body",
    "clean_name",
    "has_control_character",
    "has_visible_character",
    "reject_unstorable",
]

StrOrPromise = str | Promise  # messages are usually lazy translations

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Category Cc (U+0000–U+001F, U+007F–U+009F) and lone surrogates: in no username, no search.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): rendered as nothing.
# unicodedata has no accessor for it. Includes the Hangul fillers (category Lo), the classic
# "blank name" trick, which no category test would catch.
_DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
# Blank glyphs that are neither whitespace nor ignorable (Braille pattern blank, So).
_BLANK = frozenset("\u2800")
# Not visible on their own: spaces, controls, format characters, separators, surrogates,
# combining marks (they sit on a base character).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ


def _is_variation_selector(ch: str) -> bool:
    # Standard VS1-16, the supplement VS17-256, Mongolian free variation selectors FVS1-4.
    return (
        "\ufe00" <= ch <= "\ufe0f"
        or "\U000e0100" <= ch <= "\U000e01ef"
        or "\u180b" <= ch <= "\u180d"
        or ch == "\u180f"
    )


def _is_tag(ch: str) -> bool:
    return "\U000e0020" <= ch <= "\U000e007f"


def _is_visible(ch: str) -> bool:
    if ch in _BLANK or _DEFAULT_IGNORABLE.match(ch):
        return False
    return unicodedata.category(ch) not in _INVISIBLE_CATEGORIES


def has_visible_character(text: str) -> bool:
    """Whether anything in ``text`` would show on screen."""
    return any(_is_visible(ch) for ch in text)


def has_control_character(text: str) -> bool:
    """Whether ``text`` has a control character (NUL, newline, tab, …) or a lone surrogate:
    never part of a username, and NUL or a surrogate in a query is a database error on
    PostgreSQL."""
    return bool(_CONTROL.search(text))


def reject_unstorable(text: str) -> None:
    """NUL cannot be stored by PostgreSQL and lone surrogates cannot be encoded at all."""
    if _UNSTORABLE.search(text):
        raise ValidationError(
            _("The text contains characters that cannot be stored."), code="invalid"
        )


@dataclass(frozen=True)
class Wording:
    """What to tell the person, per kind of text. ``too_long`` may use ``%(max)d`` and
    ``%(len)d``; ``forbidden`` is for control, bidi or lone invisible characters."""

    not_text: StrOrPromise
    empty: StrOrPromise
    too_long: StrOrPromise
    forbidden: StrOrPromise


def _name_char_allowed(text: str, i: int) -> bool:
    ch = text[i]
    category = unicodedata.category(ch)
    if category in {"Cc", "Zl", "Zp"} or ch in _BIDI_CONTROLS:
        return False
    if not (category == "Cf" or _DEFAULT_IGNORABLE.match(ch)):
        return True
    # An invisible character is only allowed as part of what it modifies.
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if ch in _JOINERS:
        return bool(before and after) and _is_visible(before) and _is_visible(after)
    if _is_variation_selector(ch) or ch == "\u034f":  # VS / combining grapheme joiner
        return bool(before) and _is_visible(before)
    if _is_tag(ch):  # emoji tag sequences: 🏴 + tags + CANCEL TAG (subdivision flags)
        return bool(before) and (_is_visible(before) or _is_tag(before))
    return False


# What a body may not contain, as one regex (the send path is hot: a per-character category
# lookup cost ~1 ms for 4000 characters). Category Cc is exactly U+0000–U+001F and
# U+007F–U+009F; tab, LF and CR stay. apps/core/tests/test_text.py checks the equivalence.
_BODY_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202d\u202e]")


def _clean(value, *, max_length: int, wording: Wording, allow_empty: bool, name: bool) -> str:
    if not isinstance(value, str):
        raise ValidationError(wording.not_text, code="invalid")
    reject_unstorable(value)
    value = value.strip()
    # "Empty" first: a text of zero-width characters alone looks blank, so it gets the blank
    # message, not a lecture about invisible characters.
    if not has_visible_character(value):
        if allow_empty:
            return ""
        raise ValidationError(wording.empty, code="required")
    if name:
        if not all(_name_char_allowed(value, i) for i in range(len(value))):
            raise ValidationError(wording.forbidden, code="invalid")
    elif _BODY_FORBIDDEN.search(value):
        raise ValidationError(wording.forbidden, code="invalid")
    if len(value) > max_length:
        raise ValidationError(
            wording.too_long % {"max": max_length, "len": len(value)}, code="max_length"
        )
    return value


def clean_name(value, *, max_length: int, wording: Wording, allow_empty: bool = False) -> str:
    """A one-line name (a room, a person): stripped, visible, without control, bidi or lone
    invisible characters, at most ``max_length`` characters. With ``allow_empty`` a name with
    nothing visible comes back as ``""`` instead of raising ``wording.empty``."""
    return _clean(value, max_length=max_length, wording=wording, allow_empty=allow_empty, name=True)


def clean_body(value, *, max_length: int, wording: Wording, allow_empty: bool = False) -> str:
    """A message body: stripped, visible, newlines and tabs kept, no other control characters
    and no bidi overrides, at most ``max_length`` characters. With ``allow_empty`` (a message
    of files only) nothing visible comes back as ``""``."""
    return _clean(
        value, max_length=max_length, wording=wording, allow_empty=allow_empty, name=False
    )
