"""One text rule for room names, display names and message bodies (apps/core/text.py),
proved through the three services that use it."""

import pytest
from django.core.exceptions import ValidationError

from apps.chat import services
from apps.chat.models import Message, Room
from apps.profiles.services import profile_update

pytestmark = pytest.mark.django_db

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
# Nothing visible: each zero-width character alone, all of them, mixed with spaces, a Hangul
# filler (category Lo, but renders as nothing), a Braille blank, a lone combining accent.
INVISIBLE = [
    *ZERO_WIDTH,
    "".join(ZERO_WIDTH),
    " \u200b \ufeff\t",
    "\u3164\u3164",
    "\u2800",
    "\u0301",
]
UNSTORABLE = ["a\x00b", "\x00", "half\ud800", "\udfff"]


def _error(callable_) -> ValidationError:
    with pytest.raises(ValidationError) as exc_info:
        callable_()
    return exc_info.value


def _display_name_error(user, name) -> ValidationError:
    error = _error(lambda: profile_update(profile=user.profile, display_name=name))
    return error.error_dict["display_name"][0]


# --- "empty": nothing visible is the same as whitespace only ------------------------------------


@pytest.mark.parametrize("body", INVISIBLE)
def test_a_body_with_no_visible_character_is_empty_like_whitespace(public_room, alice, body):
    blank = _error(lambda: services.message_send(room=public_room, author=alice, body="   "))
    error = _error(lambda: services.message_send(room=public_room, author=alice, body=body))
    assert (
        (error.code, error.messages)
        == (blank.code, blank.messages)
        == (
            "required",
            ["Type a message first."],
        )
    )
    assert Message.objects.count() == 0


@pytest.mark.parametrize("name", INVISIBLE)
def test_a_room_name_with_no_visible_character_is_empty_like_whitespace(alice, name):
    error = _error(lambda: services.room_create(name=name, creator=alice))
    assert error.code == "required"
    assert error.messages == ["Enter a room name."]
    assert Room.objects.count() == 0


@pytest.mark.parametrize("name", ["", "   ", " \u3164 ", "\u2800", "\u200b\ufeff"])
def test_a_display_name_with_no_visible_character_means_the_username(alice, name):
    profile_update(profile=alice.profile, display_name=name)
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == ""
    assert alice.profile.name == "alice"


# --- names: one line, no control, bidi or lone invisible characters ------------------------------

FORBIDDEN_IN_NAMES = [
    "two\nlines",
    "tab\there",
    "cr\rhere",
    "bell\x07",
    "del\x7f",
    "c1\x85x",
    "line\u2028sep",
    "para\u2029sep",
    "evil\u202eesrever",
    "lro\u202dx",
    "emb\u202ax\u202c",
    "iso\u2066x\u2069",
    "mark\u200fx",
    "zero\u200bwidth",
    "word\u2060joiner",
    "bom\ufeffx",
    "soft\u00adhyphen",
    "filler\u3164x",
    "\u200dx",  # a joiner that joins nothing on one side
    "x\u200d",
]


@pytest.mark.parametrize("name", FORBIDDEN_IN_NAMES)
def test_room_and_display_names_refuse_the_same_characters(alice, name):
    room_error = _error(lambda: services.room_create(name=name, creator=alice))
    assert room_error.code == "invalid"
    assert room_error.messages == ["A room name cannot contain control or invisible characters."]
    name_error = _display_name_error(alice, name)
    assert name_error.code == "invalid"
    assert name_error.messages == ["A display name cannot contain control or invisible characters."]
    assert Room.objects.filter(is_private=False).count() == 0


ALLOWED_NAMES = [
    "Design team",
    "Команда",
    "צוות עיצוב",  # Hebrew: the bidi algorithm needs no marks for it
    "فريق التصميم",
    "می\u200cخواهم",  # Persian with a zero-width non-joiner between letters
    "\U0001f469\u200d\U0001f4bb devs",  # 👩‍💻: ZWJ between two visible characters
    "\u2764\ufe0f love",  # ❤️: a variation selector after its base
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f fans",  # 🏴 Scotland
    "e\u0301te",  # a combining accent on a letter
    "\u182a\u180b\u1820",  # Mongolian with a free variation selector
    "\U0001fae8 shaking",  # newer emoji: unassigned in older Unicode data, still allowed
]


@pytest.mark.parametrize("name", ALLOWED_NAMES)
def test_room_and_display_names_accept_real_writing(alice, name):
    assert services.room_create(name=name, creator=alice).name == name
    profile_update(profile=alice.profile, display_name=name)
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == name


# --- bodies: a block of text --------------------------------------------------------------------

ALLOWED_BODIES = [
    "line one\nline two\n\tindented",
    "windows\r\nnewlines",
    "שלום \u200fworld\u200e!",  # RLM / LRM
    "عربي \u2067English\u2069 عربي",  # an isolate around the other direction
    "\u202bembedded\u202c",
    "\u061cALM",
    "zero\u200bwidth break hint",
    "\U0001f469\u200d\U0001f4bb",
]


@pytest.mark.parametrize("body", ALLOWED_BODIES)
def test_bodies_keep_newlines_tabs_and_bidi_marks(public_room, alice, body):
    message = services.message_send(room=public_room, author=alice, body=body).message
    message.refresh_from_db()
    assert message.body == body.strip()


@pytest.mark.parametrize("body", ["spoof\u202egnp.exe", "x\u202dy", "esc\x1b[31m", "bell\x07"])
def test_bodies_refuse_direction_overrides_and_other_control_characters(public_room, alice, body):
    error = _error(lambda: services.message_send(room=public_room, author=alice, body=body))
    assert error.code == "invalid"
    assert error.messages == ["A message cannot contain control characters or direction overrides."]
    assert Message.objects.count() == 0


# --- unstorable everywhere ------------------------------------------------------------------------


@pytest.mark.parametrize("value", UNSTORABLE)
def test_nul_and_lone_surrogates_are_refused_everywhere_with_one_message(public_room, alice, value):
    stored = "The text contains characters that cannot be stored."
    for error in (
        _error(lambda: services.message_send(room=public_room, author=alice, body=value)),
        _error(lambda: services.room_create(name=value, creator=alice)),
        _display_name_error(alice, value),
    ):
        assert (error.code, error.messages) == ("invalid", [stored])


def test_the_length_limit_counts_after_stripping(alice, public_room):
    assert services.room_create(name=" " + "x" * 64 + "\n", creator=alice).name == "x" * 64
    error = _error(lambda: services.room_create(name="y" * 65, creator=alice))
    assert error.code == "max_length"
    body = services.message_send(room=public_room, author=alice, body="\n" + "z" * 4000 + " ")
    assert body.message.body == "z" * 4000


def test_the_body_regex_is_exactly_control_characters_and_overrides():
    """The body check is a regex for speed; it must equal the category rule it stands for."""
    import unicodedata

    from apps.core.text import _BODY_FORBIDDEN

    for code in range(0x10000):
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates: refused earlier as unstorable
        expected = ch in "\u202d\u202e" or (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r")
        assert bool(_BODY_FORBIDDEN.match(ch)) == expected, hex(code)
