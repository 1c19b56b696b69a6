"""Shared pytest fixtures: users, rooms and messages made through the real services."""

import itertools

import pytest
from django.contrib.auth import get_user_model

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _isolated_cache_and_media(settings, tmp_path):
    """Rate-limit counters and uploads must not leak between tests."""
    from django.core.cache import cache

    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def make_user(db):
    def make(username: str | None = None, display_name: str = "", **extra):
        username = username or f"user{next(_counter)}"
        user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
        if display_name:
            user.profile.display_name = display_name
            user.profile.save()
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice", display_name="Alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob", display_name="Bob")


@pytest.fixture
def carol(make_user):
    return make_user("carol", display_name="Carol")


@pytest.fixture
def public_room(alice):
    from apps.chat.services import room_create

    return room_create(name="general", creator=alice)


@pytest.fixture
def private_room(alice, bob):
    from apps.chat.services import dm_get_or_create

    room, _ = dm_get_or_create(user=alice, other=bob)
    return room


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client
