"""Shared pytest fixtures: users, rooms and messages made through the real services."""

import itertools
import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def _clear_counters() -> None:
    """Forget rate-limit and throttle counters. On Redis only our counter keys go: FLUSHDB would
    also wipe the channel layer's group memberships of anything else using that Redis."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    # The backend itself: ``django.core.cache.cache`` is a proxy, never an instance of it.
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        cache.clear()
        return
    client = cache._cache.get_client(write=True)
    for pattern in ("rl:*", "throttle_*", "allauth*", "ws-sockets:*"):
        for key in client.scan_iter(match=cache.make_key(pattern)):
            client.delete(key)


@pytest.fixture(autouse=True)
def _isolated_counters_and_media(settings, tmp_path):
    """Rate-limit counters and uploads must not leak between tests."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PARLEY_ATTACHMENT_ROOT = tmp_path / "attachments"
    # Password hashing is deliberately slow; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    _clear_counters()
    yield
    _clear_counters()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets a new channel-layer instance, as a new server process would. Tests run
    one event loop each, and channels-redis keeps per-process asyncio locks that a receive
    cancelled on one loop can leave bound to it (a bookkeeping slip that is harmless in a
    server, which has a single loop for its lifetime)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


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


# The suites that run against real servers, each in a pytest process of its own
# (scripts/run-tests.sh): every test under one of these directories carries its marker, so
# ``-m "not e2e and not faults and not fuzz"`` leaves them out.
SUITE_DIRS = ("e2e", "faults", "fuzz")
ROOT_DIR = Path(__file__).resolve().parent


def pytest_itemcollected(item):
    """Mark a test by its suite's directory (before ``-m`` deselects by marker)."""
    parts = Path(str(item.path)).resolve().relative_to(ROOT_DIR).parts
    if parts and parts[0] in SUITE_DIRS:
        item.add_marker(getattr(pytest.mark, parts[0]))


def pytest_configure(config):
    # The Russian pages need locale/ru's .mo, a build output of `make setup`: compile it here
    # too (only when the .po is newer), so a bare `pytest` tests the committed catalogue.
    import importlib.util

    script = Path(__file__).resolve().parent / "scripts" / "translations.py"
    spec = importlib.util.spec_from_file_location("parley_translations", script)
    translations = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(translations)
    translations.compile_catalogues()


def pytest_collection_modifyitems(config, items):
    """Tests that need Redis carry the ``redis`` marker; without REDIS_URL they are skipped
    with a visible reason (and in CI that skip becomes a failure, see below)."""
    if os.environ.get("REDIS_URL"):
        return
    skip = pytest.mark.skip(reason="needs the real Redis: set REDIS_URL=redis://127.0.0.1:6379/0")
    for item in items:
        if "redis" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skipped test is a failed test: a missing service must never pass
    silently."""
    report = yield
    strict = os.environ.get("CI") or os.environ.get("PARLEY_FAIL_ON_SKIP")
    if strict and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed: {report.longrepr}"
    return report


@pytest.fixture
def unlimited(settings):
    """Lift the per-user send rate limit for tests that build a long history."""
    settings.PARLEY_MESSAGE_RATE = (1_000_000, 10)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """The rate limits' fixed windows do not roll over in the middle of a test: every test
    sees one instant (a test of windows moves it with a clock of its own). Without it, any
    test that uses a limit twice failed now and then, when a window's end fell between its
    two requests (seen with PARLEY_READ_RATE = (1, 10) on a loaded machine)."""
    from apps.core import ratelimit

    monkeypatch.setattr(ratelimit, "_clock", lambda: 1_800_000_000.0)
