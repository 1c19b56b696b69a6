"""The one access rule: Room.objects.visible_to(user)."""

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.chat import selectors
from apps.chat.models import Room

pytestmark = pytest.mark.django_db


def test_public_rooms_are_visible_to_every_signed_in_user(public_room, carol):
    assert list(Room.objects.visible_to(carol)) == [public_room]


def test_a_private_room_is_visible_only_to_its_participants(
    public_room, private_room, alice, bob, carol
):
    assert set(Room.objects.visible_to(alice)) == {public_room, private_room}
    assert set(Room.objects.visible_to(bob)) == {public_room, private_room}
    assert list(Room.objects.visible_to(carol)) == [public_room]


def test_anonymous_users_see_nothing(public_room):
    assert list(Room.objects.visible_to(AnonymousUser())) == []


def test_room_get_for_user_treats_someone_elses_private_room_as_missing(private_room, carol):
    with pytest.raises(Room.DoesNotExist):
        selectors.room_get_for_user(user=carol, pk=private_room.pk)
    with pytest.raises(Room.DoesNotExist):
        selectors.room_get_for_user(user=carol, pk=999999)


def test_room_is_visible_to_agrees_with_the_queryset_rule(public_room, private_room, alice, carol):
    for room in (public_room, private_room):
        for user in (alice, carol):
            expected = Room.objects.visible_to(user).filter(pk=room.pk).exists()
            assert selectors.room_is_visible_to(room=room, user=user) is expected


def test_private_room_title_is_the_other_participant(private_room, alice, bob):
    assert selectors.room_title_for(room=private_room, user=alice) == "Bob"
    assert selectors.room_title_for(room=private_room, user=bob) == "Alice"


def test_visible_rooms_are_not_duplicated_by_memberships(public_room, alice, bob):
    from apps.chat.models import Membership

    Membership.objects.create(room=public_room, user=bob)
    assert Room.objects.visible_to(bob).count() == 1
