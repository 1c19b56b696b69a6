"""Item 5: a cache (Redis) outage degrades, it does not fail.

The cache points at a closed port through ``project.cache.ResilientRedisCache``, exactly what
production runs with ``REDIS_URL`` when Redis is down: every request that touches a throttle or
a rate limit must still succeed (limits fail open), and the log gets one warning per interval
per process, not a traceback per call."""

import contextlib
import logging

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from apps.accounts import tokens
from apps.chat.models import Message, Room
from project import cache as resilient

TOKEN_URL = "/api/auth/token/"
CLOSED_PORT = "redis://127.0.0.1:9/0"  # discard: nothing listens there


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(resilient, "_clock", clock)
    return clock


@contextlib.contextmanager
def resilient_cache(settings, location: str, **options):
    """The default cache is the resilient Redis cache at ``location`` for the block; then back
    to the working cache (before the counters are cleared at teardown), with the outage
    forgotten so the next test finds Redis up."""
    resilient.outage.reset()
    working = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "project.cache.ResilientRedisCache",
            "LOCATION": location,
            "OPTIONS": options,
        }
    }
    try:
        yield
    finally:
        settings.CACHES = working
        resilient.outage.reset()


@pytest.fixture
def redis_down(settings, clock):
    """The default cache is Redis on a closed port, with the production options."""
    with resilient_cache(
        settings,
        CLOSED_PORT,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        RETRY_AFTER=5,
        WARNING_INTERVAL=60,
    ):
        yield


def outage_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "project.cache"]


def assert_no_error_logged(caplog) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert all(r.exc_info is None for r in caplog.records)


def test_api_reads_and_writes_succeed_with_redis_down(redis_down, as_alice, public_room, caplog):
    caplog.set_level(logging.WARNING)

    listed = as_alice.get("/api/rooms/")
    created = as_alice.post("/api/rooms/", {"name": "outage"}, format="json")
    sent = as_alice.post(
        f"/api/rooms/{public_room.pk}/messages/", {"body": "still here"}, format="json"
    )
    history = as_alice.get(f"/api/rooms/{public_room.pk}/messages/")

    assert [listed.status_code, created.status_code, sent.status_code] == [200, 201, 201]
    assert history.status_code == 200
    assert Room.objects.filter(name="outage").exists()
    assert Message.objects.get().body == "still here"
    assert_no_error_logged(caplog)


def test_the_token_endpoint_answers_with_redis_down(redis_down, anon, alice, password, caplog):
    caplog.set_level(logging.WARNING)

    wrong = anon.post(TOKEN_URL, {"username": "alice", "password": "nope"}, format="json")
    right = anon.post(TOKEN_URL, {"username": "alice", "password": password}, format="json")

    assert wrong.status_code == 400
    assert right.status_code == 200
    assert tokens.token_authenticate(right.json()["token"]) == alice
    assert_no_error_logged(caplog)


def test_the_login_form_works_with_redis_down(redis_down, alice, password, caplog):
    caplog.set_level(logging.WARNING)
    url = reverse("account_login")

    wrong = Client().post(url, {"login": "alice", "password": "nope"})
    client = Client()
    right = client.post(url, {"login": "alice", "password": password})

    assert wrong.status_code == 200
    assert "not correct" in wrong.content.decode()
    assert right.status_code == 302
    assert client.session[SESSION_KEY] == str(alice.pk)
    assert_no_error_logged(caplog)


def test_html_message_send_works_with_redis_down(redis_down, alice_client, public_room, caplog):
    caplog.set_level(logging.WARNING)
    url = reverse("chat:message_send", kwargs={"pk": public_room.pk})

    response = alice_client.post(url, {"body": "via the form"})

    assert response.status_code == 302
    assert Message.objects.get().body == "via the form"
    assert_no_error_logged(caplog)


def test_an_outage_logs_one_warning_per_interval(redis_down, clock, as_alice, public_room, caplog):
    caplog.set_level(logging.WARNING)
    resilient.outage.reset()  # making the fixtures (a room: a rate limit) already hit the outage

    for _ in range(5):
        assert as_alice.get("/api/rooms/").status_code == 200
    clock.now += 30  # past the retry pause (Redis is asked again), inside the warning interval
    for _ in range(5):
        assert as_alice.get("/api/rooms/").status_code == 200

    [first] = outage_warnings(caplog)
    assert first.levelno == logging.WARNING
    assert "cache unreachable" in first.getMessage()

    clock.now += 31  # the interval has passed: the outage is reported again, once
    for _ in range(5):
        assert as_alice.get("/api/rooms/").status_code == 200

    assert len(outage_warnings(caplog)) == 2
    assert "more errors since the last warning" in outage_warnings(caplog)[1].getMessage()


def test_after_an_error_redis_is_not_asked_again_until_the_retry_pause_ends(
    redis_down, clock, monkeypatch
):
    """A hung Redis costs one timeout per pause, not one per cache call."""
    from django.core.cache import cache
    from django.core.cache.backends.redis import RedisCache

    calls = []
    real_get = RedisCache.get

    def counting_get(self, *args, **kwargs):
        calls.append(clock.now)
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(RedisCache, "get", counting_get)

    assert [cache.get("k", "miss") for _ in range(3)] == ["miss"] * 3
    assert len(calls) == 1
    clock.now += 5
    assert cache.get("k", "miss") == "miss"
    assert len(calls) == 2


@pytest.mark.redis
def test_the_resilient_cache_is_an_ordinary_cache_while_redis_is_up(settings, clock):
    import os

    resilient.outage.reset()
    settings.CACHES = {
        "default": {
            "BACKEND": "project.cache.ResilientRedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": "parley-test-outage",
        }
    }
    from django.core.cache import cache

    cache.delete("n")
    assert cache.add("n", 1, timeout=10) is True
    assert cache.add("n", 5, timeout=10) is False
    assert cache.incr("n") == 2
    assert cache.get_many(["n", "absent"]) == {"n": 2}
    assert cache.delete("n") is True
    with pytest.raises(ValueError):
        cache.incr("n")


def test_password_reset_works_with_redis_down(redis_down, alice, caplog):
    from allauth.account.models import EmailAddress
    from django.core import mail

    caplog.set_level(logging.WARNING)
    EmailAddress.objects.create(user=alice, email="alice@example.com", primary=True)

    response = Client().post(reverse("account_reset_password"), {"email": "alice@example.com"})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert_no_error_logged(caplog)


@pytest.fixture
def silent_redis():
    """A TCP server that accepts connections and never answers: a hung Redis."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.django_db(transaction=True)  # the request runs in another thread
def test_a_hung_redis_times_out_and_the_request_still_succeeds(
    settings, clock, silent_redis, as_alice, public_room, caplog
):
    """Without a socket timeout redis-py would wait for ever; the request must come back (the
    worker thread is given 3 s: less than redis-py's own 5 s default, far more than the configured
    0.2 s) and the outage be logged."""
    import threading

    caplog.set_level(logging.WARNING)
    statuses = []
    with resilient_cache(settings, silent_redis, socket_connect_timeout=0.2, socket_timeout=0.2):
        worker = threading.Thread(
            target=lambda: statuses.append(as_alice.get("/api/rooms/")), daemon=True
        )
        worker.start()
        worker.join(timeout=3)
        assert not worker.is_alive(), "the request hung on the silent Redis"
    assert [r.status_code for r in statuses] == [200]
    assert "Timeout" in outage_warnings(caplog)[0].getMessage()
