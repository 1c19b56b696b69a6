"""Issue #8 item 10a: at most PARLEY_WS_MAX_PER_USER open websockets per user — across every
process when Redis is configured (a per-user sorted set of leases), per process otherwise.
Past it a socket is accepted and closed with 4429, which htmx does not retry. Redis
unreachable: allowed, with a warning."""

import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from apps.chat import fanout, socketlimit

from .test_consumers import open_socket

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_4429 = {"type": "websocket.close", "code": 4429}


@pytest.fixture
def limit_2(settings):
    settings.PARLEY_WS_MAX_PER_USER = 2


async def live(room_pk, user):
    communicator, connected = await open_socket(room_pk, user)
    assert connected
    assert await communicator.receive_nothing(timeout=0.05)  # not closed
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
    """Fail open: a limit must not take the chat down. One warning, not one per socket."""

    def unreachable():
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(socketlimit, "shared", lambda: True)
    monkeypatch.setattr(socketlimit, "_client", unreachable)
    monkeypatch.setattr(socketlimit, "_last_warning", -1e9)
    sockets = [await live(public_room.pk, alice) for _ in range(3)]
    warnings = [r for r in caplog.records if "socket limit" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    for communicator in sockets:
        await communicator.disconnect()  # release fails quietly too


# --- across processes (Redis) -----------------------------------------------------------------


def leases_of(user) -> dict[str, float]:
    key = socketlimit._key(user.pk)
    return dict(socketlimit._client().zrange(key, 0, -1, withscores=True))


def add_lease(user, socket_id: str, until: float) -> None:
    socketlimit._client().zadd(socketlimit._key(user.pk), {socket_id: until})


@pytest.mark.redis
async def test_sockets_of_other_processes_count(public_room, alice, limit_2):
    add_lease(alice, "process-2-socket-a", time.time() + 60)
    add_lease(alice, "process-2-socket-b", time.time() + 60)
    await refused(public_room.pk, alice)
    socketlimit._client().delete(socketlimit._key(alice.pk))


@pytest.mark.redis
async def test_the_leases_of_a_crashed_process_lapse(public_room, alice, limit_2):
    add_lease(alice, "dead-process-a", time.time() - 1)
    add_lease(alice, "dead-process-b", time.time() - 1)
    first, second = await live(public_room.pk, alice), await live(public_room.pk, alice)
    leases = leases_of(alice)
    assert len(leases) == 2 and not {b"dead-process-a", b"dead-process-b"} & set(leases)
    await first.disconnect()
    await second.disconnect()
    assert leases_of(alice) == {}  # released at disconnect


@pytest.mark.redis
async def test_the_hub_renews_its_sockets_leases(public_room, alice, limit_2, monkeypatch):
    """Time passes beyond a lease; the hub's re-check renewed it, so the places stay taken."""
    sockets = [await live(public_room.pk, alice), await live(public_room.pk, alice)]
    later = time.time() + socketlimit.LEASE_SECONDS + 1
    monkeypatch.setattr(socketlimit, "_now", lambda: later)
    await fanout.hub().verify()
    assert all(until > later for until in leases_of(alice).values())
    await refused(public_room.pk, alice)
    for communicator in sockets:
        await communicator.disconnect()


def test_the_room_page_says_why_a_4429_socket_closed(alice_client, public_room):
    """The banner's text for 4429 comes from the page (translatable); parley.js shows it."""
    html = alice_client.get(public_room.get_absolute_url()).content.decode()
    assert 'data-text-too-many="Too many open tabs — close one and reload"' in html
