"""allauth's e-mails name the product, "Parley", not the host (issue 14), in the reader's
language."""

import pytest
from django.core import mail

RESET_URL = "/accounts/password/reset/"


@pytest.fixture
def mailbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    mail.outbox = []
    return mail.outbox


@pytest.fixture
def dora(make_user):
    return make_user("dora", email="dora@example.org")


def test_the_password_reset_mail_says_parley_in_english(client, dora, mailbox):
    response = client.post(RESET_URL, {"email": "dora@example.org"})

    assert response.status_code == 302
    [message] = mailbox
    assert message.to == ["dora@example.org"]
    assert message.subject == "[Parley] Password Reset Email"
    assert message.body.startswith("Hello from Parley!")
    assert "Thank you for using Parley!" in message.body
    assert "testserver!" not in message.body  # the host is no longer the site's name
    assert "http://testserver/accounts/password/reset/key/" in message.body  # the link is


def test_the_password_reset_mail_says_parley_in_russian(client, dora, mailbox):
    response = client.post(RESET_URL, {"email": "dora@example.org"}, HTTP_ACCEPT_LANGUAGE="ru")

    assert response.status_code == 302
    [message] = mailbox
    assert message.subject.startswith("[Parley] ")
    assert "Parley" in message.body
    assert "testserver!" not in message.body
    assert "Hello from" not in message.body
    # Russian text (allauth's own catalogue), around our site name.
    assert any("а" <= ch <= "я" for ch in message.subject.lower())
    assert any("а" <= ch <= "я" for ch in message.body.lower())
