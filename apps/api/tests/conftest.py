"""Fixtures for the API tests: clients authenticated the way real API clients are (a token), and
messages made through the real service."""

import pytest
from rest_framework.test import APIClient

from apps.accounts import tokens
from apps.chat import services


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The production hasher takes ~0.3 s per user made or password checked; these tests are
    about the API, not the hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def anon(db):
    return APIClient()


@pytest.fixture
def token_client(db):
    """``token_client(user)`` → an APIClient sending ``Authorization: Bearer <token>`` (a new
    personal access token of ``user``; ``client.token`` is it, ``client.secret`` its secret)."""

    def make(user, scheme: str = "Bearer") -> APIClient:
        token, secret = tokens.token_create(user=user, name="test client")
        # Used once already: the steady state, where a request writes nothing (last use is
        # recorded once a minute), so query counts are those of the route alone.
        tokens.token_lookup(secret)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {secret}")
        client.token, client.secret = token, secret
        return client

    return make


@pytest.fixture
def as_alice(token_client, alice):
    return token_client(alice)


@pytest.fixture
def as_carol(token_client, carol):
    """Carol is the outsider: she is in no private room."""
    return token_client(carol)


@pytest.fixture
def send():
    def send(room, author, body="hello"):
        return services.message_send(room=room, author=author, body=body).message

    return send


@pytest.fixture
def as_bob(token_client, bob):
    return token_client(bob)


@pytest.fixture
def dave(make_user):
    """Someone in no room yet: the one an owner adds."""
    return make_user("dave", display_name="Dave")


@pytest.fixture
def group(alice, bob):
    """A private group: Alice owns it, Bob is a member, Carol is an outsider."""
    return services.room_create(name="team", creator=alice, private=True, members=["bob"])


@pytest.fixture
def public_with_bob(public_room, bob):
    """The public room "general": Alice owns it, Bob joined it, Carol has not."""
    services.room_join(room=public_room, user=bob)
    return public_room
