"""Issue #8 item 10a: at most PARLEY_WS_MAX_PER_USER open websockets per user — across every
process when Redis is configured (a per-user sorted set of leases), per process otherwise.
Past it a socket is accepted and closed with 4429, which htmx does not retry. Redis
unreachable: allowed, with a warning."""

import time

import pytest
import redis

from apps.chat import fanout, socketlimit
from project import cache as project_cache

from .helpers import assert_answers, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_4429 = {"type": "websocket.close", "code": 4429}


@pytest.fixture
def limit_2(settings):
    settings.PARLEY_WS_MAX_PER_USER = 2


@pytest.fixture
def alice_leases(alice):
    """Alice's lease set, removed when the test ends however it ends (Redis is shared)."""
    yield
    if socketlimit.shared():
        socketlimit._cache().redis().delete(socketlimit.key(alice.pk))


async def live(room_pk, user):
    communicator, connected = await open_socket(room_pk, user)
    assert connected
    await assert_answers(communicator)  # not closed: it answers a frame
    return communicator


async def refused(room_pk, user) -> None:
    communicator, connected = await open_socket(room_pk, user)
    assert connected  # accepted, then closed: clients do not retry a 4xxx close
    assert await communicator.receive_output(timeout=5) == CLOSED_4429
    await communicator.disconnect()


async def test_past_the_limit_a_socket_is_closed_with_4429(public_room, alice, bob, limit_2):
    first, second = await live(public_room.pk, alice), await live(public_room.pk, alice)
    await refused(public_room.pk, alice)
    bob_socket = await live(public_room.pk, bob)  # per user
    await first.disconnect()
    third = await live(public_room.pk, alice)  # a closed socket frees its place
    await refused(public_room.pk, alice)
    for communicator in (second, third, bob_socket):
        await communicator.disconnect()


async def test_the_default_limit_is_20(public_room, alice, settings):
    assert settings.PARLEY_WS_MAX_PER_USER == 20
    sockets = [await live(public_room.pk, alice) for _ in range(20)]
    await refused(public_room.pk, alice)
    for communicator in sockets:
        await communicator.disconnect()


async def test_an_unreachable_redis_does_not_refuse_sockets(
    public_room, alice, limit_2, monkeypatch, caplog
):
    """Fail open: a limit must not take the chat down. One warning, not one per socket, and
    the cache's pause after an error holds for the socket limit too: one attempt, not one
    timeout per connect."""
    closed_port = project_cache.ResilientRedisCache(
        "redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.5}}
    )
    project_cache.outage.reset()
    monkeypatch.setattr(socketlimit, "_cache", lambda: closed_port)
    attempts = []
    real_connect = redis.connection.Connection.connect

    def counted(self):
        attempts.append(self.port)
        return real_connect(self)

    monkeypatch.setattr(redis.connection.Connection, "connect", counted)
    sockets = [await live(public_room.pk, alice) for _ in range(3)]
    for communicator in sockets:
        await communicator.disconnect()  # release skips Redis too
    warnings = [r for r in caplog.records if "socket limit is not enforced" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert attempts == [1]
    project_cache.outage.reset()


# --- across processes (Redis) -----------------------------------------------------------------


def leases_of(user) -> dict[str, float]:
    key = socketlimit.key(user.pk)
    return dict(socketlimit._cache().redis().zrange(key, 0, -1, withscores=True))


def add_lease(user, socket_id: str, until: float) -> None:
    socketlimit._cache().redis().zadd(socketlimit.key(user.pk), {socket_id: until})


@pytest.mark.redis
async def test_sockets_of_other_processes_count(public_room, alice, limit_2, alice_leases):
    add_lease(alice, "process-2-socket-a", time.time() + 60)
    add_lease(alice, "process-2-socket-b", time.time() + 60)
    await refused(public_room.pk, alice)


@pytest.mark.redis
async def test_the_leases_of_a_crashed_process_lapse(public_room, alice, limit_2, alice_leases):
    add_lease(alice, "dead-process-a", time.time() - 1)
    add_lease(alice, "dead-process-b", time.time() - 1)
    first, second = await live(public_room.pk, alice), await live(public_room.pk, alice)
    leases = leases_of(alice)
    assert len(leases) == 2 and not {b"dead-process-a", b"dead-process-b"} & set(leases)
    await first.disconnect()
    await second.disconnect()
    assert leases_of(alice) == {}  # released at disconnect


@pytest.mark.redis
async def test_the_hub_renews_its_sockets_leases(
    public_room, alice, limit_2, monkeypatch, alice_leases
):
    """Time passes beyond a lease; the hub's re-check renewed it, so the places stay taken."""
    sockets = [await live(public_room.pk, alice), await live(public_room.pk, alice)]
    later = time.time() + socketlimit.LEASE_SECONDS + 1
    monkeypatch.setattr(socketlimit, "_now", lambda: later)
    await fanout.hub().verify()
    assert all(until > later for until in leases_of(alice).values())
    await refused(public_room.pk, alice)
    for communicator in sockets:
        await communicator.disconnect()


@pytest.mark.redis
async def test_a_connect_that_fails_after_taking_a_place_gives_it_back(
    public_room, alice, limit_2, monkeypatch, alice_leases
):
    """The connect raises after the lease was taken (here: the hub's join; on daphne also
    close_for_retry re-raising, or a cancelled task): disconnect() never runs, so the place
    is released by connect itself, not left taken for LEASE_SECONDS."""

    async def broken_join(self, room_id, consumer):
        raise RuntimeError("join failed")

    monkeypatch.setattr(fanout.Hub, "join", broken_join)
    communicator, _ = await open_socket_raising(public_room.pk, alice)
    assert leases_of(alice) == {}
    monkeypatch.undo()
    sockets = [await live(public_room.pk, alice), await live(public_room.pk, alice)]
    for communicator in sockets:
        await communicator.disconnect()


async def open_socket_raising(room_pk, user):
    with pytest.raises(RuntimeError, match="join failed"):
        return await open_socket(room_pk, user)
    return None, False


@pytest.mark.redis
async def test_connects_share_one_redis_connection_pool(public_room, alice, bob, monkeypatch):
    """Each connect runs in its own task, with its own cache instance; the socket limit still
    uses the process's one Redis client (no new pool, no new TCP connection per socket)."""
    first = await live(public_room.pk, alice)  # the process's pool exists from here on
    pools = []
    real_init = redis.connection.ConnectionPool.__init__

    def counted(self, *args, **kwargs):
        pools.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.ConnectionPool, "__init__", counted)
    second, third = await live(public_room.pk, alice), await live(public_room.pk, bob)
    for communicator in (first, second, third):
        await communicator.disconnect()
    assert pools == []


def test_the_room_page_says_why_a_4429_socket_closed(alice_client, public_room):
    """The banner's text for 4429 comes from the page (translatable); parley.js shows it."""
    html = alice_client.get(public_room.get_absolute_url()).content.decode()
    assert 'data-text-too-many="Too many open tabs — close one and reload"' in html


def test_a_redis_logic_error_is_not_an_outage(caplog):
    """Only connection and timeout errors mean "Redis is away". A ResponseError (a wrong
    command or type) is a bug: it is raised, and pauses neither the cache nor the socket limit
    (one error tuple for the project: project.cache.OUTAGE_ERRORS)."""
    cache = project_cache.ResilientRedisCache("redis://127.0.0.1:1/0", {})
    project_cache.outage.reset()

    def wrong_type():
        raise redis.exceptions.ResponseError("WRONGTYPE Operation against a key")

    with pytest.raises(redis.exceptions.ResponseError):
        cache.guarded("socket limit (connect)", wrong_type, lambda: True)
    assert cache.guarded("get", lambda: "called", lambda: "skipped") == "called"
    assert "cache unreachable" not in caplog.text
