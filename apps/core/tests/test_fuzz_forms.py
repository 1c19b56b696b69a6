"""Fuzz pass over every HTML form POST and the token endpoint (hypothesis): whatever the
fields hold — controls, NUL, bidi, huge text, unknown fields, a random file, raw bytes that
are not UTF-8 — the answer is below 500 and nothing is logged at ERROR or with a traceback.

Django's test client re-raises an exception a view let escape, so a 500 fails loudly too."""

import json
import logging

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.core.tests.fuzzing import FUZZ

pytestmark = pytest.mark.django_db

# Anything a browser can send in a field (the client encodes UTF-8: no lone surrogates).
field_text = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\u202e", "\u200b" * 3, "x" * 5000, "ab" * 40]),
    st.sampled_from(["alice", "alice@example.com", "correct-horse-battery-staple"]),
)
extra_fields = st.dictionaries(st.text(min_size=1, max_size=12), field_text, max_size=3)
raw_bytes = st.binary(max_size=400)

# name → (url, needs a logged-in client, field names)
FORMS = {
    "room create": (lambda room: reverse("chat:room_create"), True, ["name"]),
    "message send": (
        lambda room: reverse("chat:message_send", kwargs={"pk": room.pk}),
        True,
        ["body", "client_id"],
    ),
    "profile edit": (
        lambda room: reverse("profiles:edit"),
        True,
        ["display_name", "remove_avatar"],
    ),
    "login": (lambda room: reverse("account_login"), False, ["login", "password", "remember"]),
    "signup": (
        lambda room: reverse("account_signup"),
        False,
        ["username", "email", "password1", "password2"],
    ),
    "password reset": (lambda room: reverse("account_reset_password"), False, ["email"]),
    "token": (lambda room: "/api/auth/token/", False, ["username", "password"]),
}


def _client(user, logged_in: bool, htmx: bool) -> Client:
    client = Client(headers={"HX-Request": "true"} if htmx else {})
    if logged_in:
        client.force_login(user)
    return client


def _assert_quiet(caplog) -> None:
    loud = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not loud, [(r.name, r.levelname, r.getMessage()) for r in loud]
    caplog.clear()


@pytest.mark.parametrize("form", FORMS, ids=list(FORMS))
def test_fuzz_form_fields(form, alice, public_room, caplog, unlimited):
    url_for, logged_in, names = FORMS[form]
    url = url_for(public_room)
    fields = st.fixed_dictionaries({}, optional={name: field_text for name in names})
    caplog.set_level(logging.WARNING)

    @settings(parent=FUZZ, max_examples=25)
    @given(data=fields, extra=extra_fields, htmx=st.booleans())
    def post(data, extra, htmx):
        client = _client(alice, logged_in, htmx)
        response = client.post(url, {**extra, **data})
        assert response.status_code < 500
        _assert_quiet(caplog)

    post()


BOUNDARY = "fuzz7MA4YWxkTrZu0gW"


def _multipart(*, display_name: str, filename: str, content_type: str, content: bytes) -> bytes:
    """Built by hand: the test client's own encoder refuses odd file names (e.g. "/") before
    sending, but a real client can send them."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="display_name"\r\n\r\n'
        f"{display_name}\r\n"
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="avatar"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return head.encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def test_fuzz_profile_edit_multipart_with_any_file(alice, caplog):
    """The avatar field takes a file of any bytes, name and declared type."""
    caplog.set_level(logging.WARNING)
    client = _client(alice, True, False)

    @settings(parent=FUZZ, max_examples=25)
    @given(
        content=raw_bytes | st.sampled_from([b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40]),
        filename=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
        | st.sampled_from(["/", "..", "../../etc/passwd", "a.png\x00.exe", "", "\u202egnp.exe"]),
        content_type=st.sampled_from(["image/png", "image/gif", "text/plain", "", "\u202e/x"]),
        display_name=field_text,
    )
    def post(content, filename, content_type, display_name):
        body = _multipart(
            display_name=display_name, filename=filename, content_type=content_type, content=content
        )
        response = client.post(
            reverse("profiles:edit"),
            data=body,
            content_type=f"multipart/form-data; boundary={BOUNDARY}",
        )
        assert response.status_code < 500
        _assert_quiet(caplog)

    post()


@pytest.mark.parametrize("form", FORMS, ids=list(FORMS))
def test_fuzz_raw_bodies(form, alice, public_room, caplog, unlimited):
    """Bodies as bytes, under each content type a form or API client may send: invalid UTF-8,
    broken percent-escapes, broken multipart, broken JSON."""
    url_for, logged_in, _names = FORMS[form]
    url = url_for(public_room)
    caplog.set_level(logging.WARNING)
    content_types = st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "application/json",
            "text/plain",
        ]
    )

    @settings(parent=FUZZ, max_examples=20)
    @given(body=raw_bytes, content_type=content_types)
    def post(body, content_type):
        client = _client(alice, logged_in, False)
        response = client.post(url, data=body, content_type=content_type)
        assert response.status_code < 500
        _assert_quiet(caplog)

    post()


def test_fuzz_token_endpoint_json(db, caplog):
    """The token endpoint with JSON values of every type."""
    caplog.set_level(logging.WARNING)
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | field_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    )

    @settings(parent=FUZZ, max_examples=30)
    @given(payload=st.dictionaries(st.sampled_from(["username", "password", "x"]), values))
    def post(payload):
        response = Client().post(
            "/api/auth/token/", data=json.dumps(payload), content_type="application/json"
        )
        assert response.status_code < 500
        _assert_quiet(caplog)

    post()
