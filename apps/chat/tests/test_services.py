"""The service layer: the only way rooms, conversations and messages are born."""

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.chat import realtime, services
from apps.chat.models import Membership, Message, Room

pytestmark = pytest.mark.django_db


# --- rooms ------------------------------------------------------------------------------------


def test_room_create_trims_the_name_and_makes_the_creator_owner(alice):
    room = services.room_create(name="  Design team  ", creator=alice)
    assert room.name == "Design team"
    assert room.is_private is False
    assert Membership.objects.get(room=room, user=alice).role == Membership.Role.OWNER


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, None, 42, "nul\x00", "half\udfff"])
def test_room_create_rejects_empty_too_long_or_non_text_names(alice, name):
    with pytest.raises(ValidationError):
        services.room_create(name=name, creator=alice)
    assert Room.objects.count() == 0


def test_room_create_accepts_exactly_64_characters(alice):
    assert services.room_create(name="x" * 64, creator=alice).name == "x" * 64


def test_room_names_are_unique_ignoring_case(alice, bob):
    services.room_create(name="General", creator=alice)
    with pytest.raises(ValidationError) as exc:
        services.room_create(name="  gEnErAl ", creator=bob)
    assert exc.value.code == "unique"
    assert Room.objects.count() == 1


def test_the_database_itself_refuses_a_case_variant_duplicate(alice):
    """The race-safe part: even if two creators pass the Python check, the constraint decides."""
    Room.objects.create(name="Lobby", created_by=alice)
    with pytest.raises(IntegrityError):
        Room.objects.create(name="LOBBY", created_by=alice)


def test_room_creation_is_rate_limited_per_user(alice, bob, settings):
    settings.PARLEY_ROOM_CREATE_RATE = (2, 60)
    services.room_create(name="one", creator=alice)
    services.room_create(name="two", creator=alice)
    with pytest.raises(services.RateLimited):
        services.room_create(name="three", creator=alice)
    assert services.room_create(name="bobs", creator=bob).name == "bobs"


# --- private conversations --------------------------------------------------------------------


def test_dm_get_or_create_returns_one_room_per_pair_in_either_direction(alice, bob):
    room, created = services.dm_get_or_create(user=alice, other=bob)
    again, created_again = services.dm_get_or_create(user=bob, other=alice)
    assert created is True and created_again is False
    assert again.pk == room.pk
    assert room.is_private
    assert set(room.memberships.values_list("user__username", flat=True)) == {"alice", "bob"}


def test_dm_pair_is_unique_in_the_database(alice, bob):
    room, _ = services.dm_get_or_create(user=alice, other=bob)
    with pytest.raises(IntegrityError):
        Room.objects.create(is_private=True, dm_key=room.dm_key)


def test_dm_with_yourself_is_refused(alice):
    with pytest.raises(ValidationError):
        services.dm_get_or_create(user=alice, other=alice)


# --- messages -----------------------------------------------------------------------------------


def test_message_send_strips_the_body_and_sets_author_and_seq(public_room, alice, bob):
    first = services.message_send(room=public_room, author=alice, body="  hello \n").message
    second = services.message_send(room=public_room, author=bob, body="hi").message
    assert (first.body, first.author, first.seq) == ("hello", alice, 1)
    assert (second.body, second.author, second.seq) == ("hi", bob, 2)
    public_room.refresh_from_db()
    assert public_room.last_seq == 2
    assert public_room.last_message_at == second.created_at


def test_seq_is_per_room(public_room, private_room, alice):
    services.message_send(room=public_room, author=alice, body="a")
    services.message_send(room=public_room, author=alice, body="b")
    assert services.message_send(room=private_room, author=alice, body="c").message.seq == 1


@pytest.mark.parametrize(
    "body", ["", "   \n\t ", "x" * 4001, None, 12, ["a"], {"a": 1}, "a\x00b", "a\ud800b"]
)
def test_message_send_rejects_bad_bodies_and_writes_nothing(public_room, alice, body):
    with pytest.raises(ValidationError):
        services.message_send(room=public_room, author=alice, body=body)
    assert Message.objects.count() == 0
    public_room.refresh_from_db()
    assert public_room.last_seq == 0


def test_message_send_accepts_exactly_4000_characters(public_room, alice):
    assert (
        len(services.message_send(room=public_room, author=alice, body="y" * 4000).message.body)
        == 4000
    )


def test_outsider_cannot_send_to_a_private_room(private_room, carol):
    with pytest.raises(services.RoomNotFound):
        services.message_send(room=private_room, author=carol, body="let me in")
    assert Message.objects.count() == 0


def test_same_client_id_stores_one_row_and_returns_the_same_message(public_room, alice):
    client_id = str(uuid.uuid4())
    results = [
        services.message_send(room=public_room, author=alice, body="once", client_id=client_id)
        for _ in range(3)
    ]
    assert [r.created for r in results] == [True, False, False]
    assert len({r.message.pk for r in results}) == 1
    assert Message.objects.count() == 1


def test_client_ids_are_scoped_per_author(public_room, alice, bob):
    client_id = uuid.uuid4()
    a = services.message_send(room=public_room, author=alice, body="a", client_id=client_id)
    b = services.message_send(room=public_room, author=bob, body="b", client_id=client_id)
    assert a.created and b.created and a.message.pk != b.message.pk


def test_client_id_must_be_a_uuid(public_room, alice):
    with pytest.raises(ValidationError):
        services.message_send(room=public_room, author=alice, body="x", client_id="not-a-uuid")


def test_reusing_a_client_id_in_another_room_is_an_error(public_room, private_room, alice):
    client_id = uuid.uuid4()
    services.message_send(room=public_room, author=alice, body="x", client_id=client_id)
    with pytest.raises(ValidationError):
        services.message_send(room=private_room, author=alice, body="x", client_id=client_id)


def test_message_sending_is_rate_limited(public_room, alice, settings):
    settings.PARLEY_MESSAGE_RATE = (3, 10)
    for i in range(3):
        services.message_send(room=public_room, author=alice, body=str(i))
    with pytest.raises(services.RateLimited) as exc:
        services.message_send(room=public_room, author=alice, body="too many")
    assert 0 < exc.value.retry_after <= 10
    assert Message.objects.count() == 3


def test_a_message_is_sent_when_the_rate_limit_store_is_unreachable(public_room, alice, settings):
    """Redis (the counters' store) down must not fail a send: the limit fails open (the cache
    backend answers like an empty cache, see project/cache.py)."""
    from project.cache import outage

    working = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "project.cache.ResilientRedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }
    try:
        result = services.message_send(room=public_room, author=alice, body="still sent")
    finally:
        settings.CACHES = working
        outage.reset()
    assert result.created and Message.objects.get().body == "still sent"


def test_an_idempotent_retry_is_not_rate_limited(public_room, alice, settings):
    """A client retrying an unacknowledged message must get its ack, not a rate-limit error."""
    settings.PARLEY_MESSAGE_RATE = (1, 10)
    client_id = uuid.uuid4()
    services.message_send(room=public_room, author=alice, body="x", client_id=client_id)
    retry = services.message_send(room=public_room, author=alice, body="x", client_id=client_id)
    assert retry.created is False


@pytest.mark.django_db(transaction=True)
def test_a_committed_message_is_broadcast_once_as_rendered_html(public_room, alice):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(realtime.room_group(public_room.pk), channel)
    message = services.message_send(room=public_room, author=alice, body="<b>hi</b>").message
    event = async_to_sync(layer.receive)(channel)
    assert event["type"] == "room.change"
    assert (event["id"], event["seq"], event["room"]) == (message.pk, 1, public_room.pk)
    assert f'id="message-{message.pk}"' in event["html"]
    assert "&lt;b&gt;hi&lt;/b&gt;" in event["html"]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_broadcast_when_the_transaction_rolls_back(public_room, alice):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(realtime.room_group(public_room.pk), channel)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.message_send(room=public_room, author=alice, body="never committed")
        raise Abort
    assert Message.objects.count() == 0
    services.message_send(room=public_room, author=alice, body="committed")
    event = async_to_sync(layer.receive)(channel)
    assert "committed" in event["html"] and "never committed" not in event["html"]


def test_a_failed_send_schedules_no_broadcast(
    public_room, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationError):
        services.message_send(room=public_room, author=alice, body="")
    assert callbacks == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_strictly_increasing_gap_free_seqs(public_room, make_user):
    """Seq is assigned under the room row's write lock, so parallel senders never collide."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    writers = [make_user() for _ in range(8)]

    def write(user):
        try:
            for i in range(5):
                services.message_send(room=public_room, author=user, body=f"{user.pk}-{i}")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, writers))
    seqs = list(
        Message.objects.filter(room=public_room).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, 41))
    by_id = list(
        Message.objects.filter(room=public_room).order_by("id").values_list("seq", flat=True)
    )
    assert sorted(by_id) == seqs


# --- a room deleted while a request is on its way ------------------------------------------------


@pytest.fixture
def vanishing(monkeypatch):
    """``vanishing(room, after="room_access")``: the room is deleted (by its owner, in another
    request) right after the service's access check, before it writes anything."""
    from apps.chat import selectors

    def install(room, after="room_access"):
        module = selectors if after == "room_access" else services
        original = getattr(module, after)

        def then_gone(*args, **kwargs):
            result = original(*args, **kwargs)
            Room.objects.filter(pk=room.pk).delete()
            return result

        monkeypatch.setattr(module, after, then_gone)

    return install


def _group(alice, bob):
    return services.room_create(name="team", creator=alice, private=True, members=["bob"])


@pytest.mark.parametrize(
    "action",
    [
        "send",
        "edit",
        "delete",
        "react",
        "join",
        "leave",
        "member_add",
        "member_remove",
        "update",
    ],
)
def test_a_room_deleted_mid_request_is_room_not_found(
    action, public_room, alice, bob, carol, vanishing, settings
):
    """Every change to a room the access check just saw, deleted before the write: the
    service says RoomNotFound (404 / close 4404), never Room.DoesNotExist or an
    IntegrityError (500), and nothing of the room is left behind."""
    settings.PARLEY_ROOM_ADMIN_RATE = (100_000, 60)
    group = _group(alice, bob)
    message = services.message_send(room=public_room, author=alice, body="hi").message
    group_message = services.message_send(room=group, author=alice, body="hi").message
    calls = {
        "send": (public_room, "room_access", lambda: services.message_send(
            room=public_room, author=alice, body="too late")),
        "edit": (public_room, "_precheck", lambda: services.message_edit(
            room=public_room, user=alice, message_id=message.pk, body="changed")),
        "delete": (public_room, "_precheck", lambda: services.message_delete(
            room=public_room, user=alice, message_id=message.pk)),
        "react": (public_room, "_precheck", lambda: services.reaction_add(
            room=public_room, user=alice, message_id=message.pk, emoji="👍")),
        "join": (public_room, "room_access", lambda: services.room_join(
            room=public_room, user=carol)),
        "leave": (group, "room_access", lambda: services.room_leave(room=group, user=bob)),
        "member_add": (group, "room_access", lambda: services.member_add(
            room=group, user=alice, username="carol")),
        "member_remove": (group, "room_access", lambda: services.member_remove(
            room=group, user=alice, member_id=bob.pk)),
        "update": (public_room, "room_access", lambda: services.room_update(
            room=public_room, user=alice, topic="gone")),
    }  # fmt: skip
    room, after, call = calls[action]
    assert group_message.room_id == group.pk
    vanishing(room, after=after)
    with pytest.raises(services.RoomNotFound):
        call()
    assert not Room.objects.filter(pk=room.pk).exists()
    assert not Membership.objects.filter(room_id=room.pk).exists()
    assert not Message.objects.filter(room_id=room.pk).exists()


# --- the posting rule --------------------------------------------------------------------------


def test_send_edit_and_react_ask_postable_by(public_room, alice, bob, monkeypatch):
    """``Room.objects.postable_by`` is the posting rule (today = visible_to): a room visible
    but not postable refuses sending, editing and reacting with NotAllowed, while reading and
    deleting one's own message still work."""
    from apps.chat import selectors
    from apps.chat.errors import NotAllowed
    from apps.chat.models import RoomQuerySet

    message = services.message_send(room=public_room, author=alice, body="before").message
    monkeypatch.setattr(RoomQuerySet, "postable_by", lambda self, user: self.none())
    calls = [
        lambda: services.message_send(room=public_room, author=alice, body="read-only now"),
        lambda: services.message_edit(
            room=public_room, user=alice, message_id=message.pk, body="changed"
        ),
        lambda: services.reaction_add(
            room=public_room, user=bob, message_id=message.pk, emoji="👍"
        ),
        lambda: services.reaction_remove(
            room=public_room, user=bob, message_id=message.pk, emoji="👍"
        ),
    ]
    for call in calls:
        with pytest.raises(NotAllowed):
            call()
    assert selectors.room_access(room=public_room, user=bob).visible
    services.message_delete(room=public_room, user=alice, message_id=message.pk)
    assert Message.objects.get(pk=message.pk).deleted


def test_the_posting_rule_costs_no_query(public_room, alice, django_assert_num_queries):
    from apps.chat import selectors

    with django_assert_num_queries(1):
        access = selectors.room_access(room=public_room, user=alice, posting=True)
    assert access.visible and access.postable and access.role == "owner"
