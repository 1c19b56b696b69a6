"""Edit, delete, reactions and replies through the services: who may, what is refused, what is
stored, and that every change takes the room's next seq as the message's version."""

import pytest
from django.core.exceptions import ValidationError

from apps.chat import services
from apps.chat.errors import MessageNotFound, NotAllowed, RoomNotFound
from apps.chat.models import Message, Reaction, Room

pytestmark = pytest.mark.django_db(transaction=True)


def send(room, author, body="hello", **kwargs) -> Message:
    return services.message_send(room=room, author=author, body=body, **kwargs).message


def fresh(message) -> Message:
    return Message.objects.get(pk=message.pk)


def last_seq(room) -> int:
    return Room.objects.get(pk=room.pk).last_seq


# --- edit -------------------------------------------------------------------------------------


def test_an_edit_takes_the_next_seq_as_version_and_keeps_the_position(public_room, alice, bob):
    first = send(public_room, alice, "first **draft**")
    send(public_room, bob, "second")
    result = services.message_edit(
        room=public_room, user=alice, message_id=first.pk, body="first _final_"
    )
    stored = fresh(first)
    assert (stored.seq, stored.version, last_seq(public_room)) == (1, 3, 3)
    assert stored.body == "first _final_" and stored.html == "<p>first <em>final</em></p>"
    assert stored.edited_at is not None
    assert [event["seq"] for event in result.change.rendered()] == [3]
    assert 'data-version="3"' in result.change.rendered()[0]["html"]


def test_an_edit_leaves_no_trace_of_the_old_text(public_room, alice):
    message = send(public_room, alice, "my password is hunter2")
    services.message_edit(room=public_room, user=alice, message_id=message.pk, body="oops")
    row = Message.objects.filter(pk=message.pk).values().get()
    assert not any("hunter2" in str(value) for value in row.values())


@pytest.mark.parametrize(
    "body, code",
    [("", "required"), ("   ", "required"), ("x" * 4001, "max_length"), (42, "invalid")],
)
def test_a_bad_edit_is_refused_and_changes_nothing(public_room, alice, body, code):
    message = send(public_room, alice, "keep me")
    with pytest.raises(ValidationError) as refused:
        services.message_edit(room=public_room, user=alice, message_id=message.pk, body=body)
    assert refused.value.code == code
    assert fresh(message).body == "keep me" and last_seq(public_room) == 1


def test_only_the_author_may_edit(public_room, alice, bob):
    message = send(public_room, alice)
    with pytest.raises(NotAllowed):
        services.message_edit(room=public_room, user=bob, message_id=message.pk, body="mine")
    assert fresh(message).body == "hello" and last_seq(public_room) == 1


def test_a_deleted_message_cannot_be_edited(public_room, alice):
    message = send(public_room, alice)
    services.message_delete(room=public_room, user=alice, message_id=message.pk)
    with pytest.raises(ValidationError) as refused:
        services.message_edit(room=public_room, user=alice, message_id=message.pk, body="back")
    assert refused.value.code == "deleted"


def test_a_message_of_another_room_is_not_found(public_room, alice):
    other = services.room_create(name="other", creator=alice)
    message = send(other, alice)
    for action in (
        lambda: services.message_edit(
            room=public_room, user=alice, message_id=message.pk, body="x"
        ),
        lambda: services.message_delete(room=public_room, user=alice, message_id=message.pk),
        lambda: services.reaction_add(
            room=public_room, user=alice, message_id=message.pk, emoji="👍"
        ),
    ):
        with pytest.raises(MessageNotFound):
            action()
    assert last_seq(public_room) == 0


@pytest.mark.parametrize("message_id", [None, "", "abc", -1, 0, True, 1.5, "9" * 30, [1]])
def test_a_malformed_message_id_is_a_validation_error(public_room, alice, message_id):
    with pytest.raises(ValidationError):
        services.message_edit(room=public_room, user=alice, message_id=message_id, body="x")


def test_an_outsider_of_a_private_room_is_told_it_does_not_exist(private_room, bob, carol):
    message = send(private_room, bob)
    calls = [
        lambda: services.message_edit(
            room=private_room, user=carol, message_id=message.pk, body="x"
        ),
        lambda: services.message_delete(room=private_room, user=carol, message_id=message.pk),
        lambda: services.reaction_add(
            room=private_room, user=carol, message_id=message.pk, emoji="👍"
        ),
        lambda: services.reaction_remove(
            room=private_room, user=carol, message_id=message.pk, emoji="👍"
        ),
    ]
    for call in calls:
        with pytest.raises(RoomNotFound):
            call()


# --- delete -----------------------------------------------------------------------------------


def test_a_delete_leaves_a_tombstone_with_nothing_of_the_message(public_room, alice, bob):
    original = send(public_room, bob, "original")
    message = send(public_room, alice, "**secret**", reply_to=original.pk)
    services.reaction_add(room=public_room, user=bob, message_id=message.pk, emoji="👍")
    result = services.message_delete(room=public_room, user=alice, message_id=message.pk)
    stored = fresh(message)
    assert stored.deleted and stored.body == "" and stored.html == "" and stored.reply_to is None
    assert not Reaction.objects.filter(message=message).exists()
    assert stored.version == last_seq(public_room) == 4
    html = result.change.rendered()[0]["html"]
    assert "data-deleted" in html and "secret" not in html


def test_a_room_owner_may_delete_anyones_message_and_other_members_may_not(
    public_room, alice, bob, carol
):
    message = send(public_room, bob)
    with pytest.raises(NotAllowed):
        services.message_delete(room=public_room, user=carol, message_id=message.pk)
    assert not fresh(message).deleted
    services.message_delete(room=public_room, user=alice, message_id=message.pk)  # the owner
    assert fresh(message).deleted


def test_in_a_conversation_nobody_deletes_the_other_persons_messages(private_room, alice, bob):
    message = send(private_room, bob)
    with pytest.raises(NotAllowed):
        services.message_delete(room=private_room, user=alice, message_id=message.pk)


def test_deleting_twice_changes_nothing_the_second_time(public_room, alice):
    message = send(public_room, alice)
    services.message_delete(room=public_room, user=alice, message_id=message.pk)
    again = services.message_delete(room=public_room, user=alice, message_id=message.pk)
    assert again.change is None and last_seq(public_room) == 2


# --- replies ------------------------------------------------------------------------------------


def test_a_reply_quotes_the_first_line_of_its_original(public_room, alice, bob):
    original = send(public_room, bob, "the plan\nsecond line")
    result = services.message_send(
        room=public_room, author=alice, body="agreed", reply_to=str(original.pk)
    )
    assert fresh(result.message).reply_to_id == original.pk
    html = result.change.rendered()[0]["html"]
    assert f'data-reply-to="{original.pk}"' in html and "the plan" in html
    assert "second line" not in html


@pytest.mark.parametrize("target", ["other-room", "deleted", "missing", "garbage"])
def test_a_reply_must_point_to_a_live_message_of_the_same_room(public_room, alice, target):
    other = services.room_create(name="other", creator=alice)
    reply_to = {
        "other-room": lambda: send(other, alice).pk,
        "deleted": lambda: (
            services.message_delete(
                room=public_room, user=alice, message_id=send(public_room, alice).pk
            ).message.pk
        ),
        "missing": lambda: 999_999,
        "garbage": lambda: "first",
    }[target]()
    before = Message.objects.count()
    with pytest.raises(ValidationError) as refused:
        services.message_send(room=public_room, author=alice, body="re", reply_to=reply_to)
    assert refused.value.code == "reply_to"
    assert Message.objects.count() == before


def test_editing_or_deleting_an_original_re_renders_its_replies(public_room, alice, bob):
    original = send(public_room, bob, "password: hunter2")
    reply = send(public_room, alice, "noted", reply_to=original.pk)
    edited = services.message_edit(
        room=public_room, user=bob, message_id=original.pk, body="password: (removed)"
    )
    assert [e["id"] for e in edited.change.rendered()] == [original.pk, reply.pk]
    assert [e["seq"] for e in edited.change.rendered()] == [3, 4]
    assert "hunter2" not in edited.change.rendered()[1]["html"]
    assert "(removed)" in edited.change.rendered()[1]["html"]
    deleted = services.message_delete(room=public_room, user=bob, message_id=original.pk)
    reply_html = deleted.change.rendered()[1]["html"]
    assert "deleted message" in reply_html.lower() and "(removed)" not in reply_html
    assert fresh(reply).version == last_seq(public_room) == 6


# --- reactions ------------------------------------------------------------------------------------


def test_reactions_are_counted_per_emoji_with_who_reacted(public_room, alice, bob, carol):
    message = send(public_room, alice)
    first = services.reaction_add(room=public_room, user=bob, message_id=message.pk, emoji="👍")
    services.reaction_add(room=public_room, user=carol, message_id=message.pk, emoji="👍")
    last = services.reaction_add(room=public_room, user=carol, message_id=message.pk, emoji="🎉")
    assert first.created and fresh(message).version == last_seq(public_room) == 4
    assert [(r["emoji"], r["count"], r["users"]) for r in last.message.reaction_summary] == [
        ("👍", 2, [bob.pk, carol.pk]),
        ("🎉", 1, [carol.pk]),
    ]
    assert f'data-users="{bob.pk} {carol.pk}"' in last.change.rendered()[0]["html"]


def test_reacting_twice_with_the_same_emoji_changes_nothing(public_room, alice, bob):
    message = send(public_room, alice)
    services.reaction_add(room=public_room, user=bob, message_id=message.pk, emoji="👍")
    again = services.reaction_add(room=public_room, user=bob, message_id=message.pk, emoji="👍")
    assert not again.created and again.change is None and last_seq(public_room) == 2


def test_removing_a_reaction_takes_a_seq_and_removing_none_does_not(public_room, alice, bob):
    message = send(public_room, alice)
    services.reaction_add(room=public_room, user=bob, message_id=message.pk, emoji="👍")
    removed = services.reaction_remove(
        room=public_room, user=bob, message_id=message.pk, emoji="👍"
    )
    assert removed.change is not None and last_seq(public_room) == 3
    assert not Reaction.objects.exists()
    nothing = services.reaction_remove(
        room=public_room, user=bob, message_id=message.pk, emoji="👍"
    )
    assert nothing.change is None and last_seq(public_room) == 3


@pytest.mark.parametrize("emoji", ["", "x", "👍👍", "<b>", None, 7, ["👍"], "👍" * 100])
def test_only_shipped_emoji_are_accepted(public_room, alice, emoji):
    message = send(public_room, alice)
    with pytest.raises(ValidationError) as refused:
        services.reaction_add(room=public_room, user=alice, message_id=message.pk, emoji=emoji)
    assert refused.value.code == "emoji"
    assert not Reaction.objects.exists()


def test_a_deleted_message_takes_no_reactions(public_room, alice):
    message = send(public_room, alice)
    services.message_delete(room=public_room, user=alice, message_id=message.pk)
    with pytest.raises(ValidationError):
        services.reaction_add(room=public_room, user=alice, message_id=message.pk, emoji="👍")


# --- review round: what a refused or empty change leaves, and the bounds ----------------------


def test_a_refused_change_leaves_the_room_in_hand_at_its_seq(public_room, alice):
    """The consumer's resume check trusts room.last_seq: a change refused under the lock
    gives its seq back, in memory too."""
    message = send(public_room, alice)
    services.message_delete(room=public_room, user=alice, message_id=message.pk)
    assert public_room.last_seq == 2
    with pytest.raises(ValidationError):
        services.message_edit(room=public_room, user=alice, message_id=message.pk, body="x")
    with pytest.raises(ValidationError):
        services.reaction_add(room=public_room, user=alice, message_id=message.pk, emoji="👍")
    assert public_room.last_seq == last_seq(public_room) == 2


def test_the_same_text_again_is_no_edit(public_room, alice):
    message = send(public_room, alice, "same")
    result = services.message_edit(room=public_room, user=alice, message_id=message.pk, body="same")
    assert result.change is None and fresh(message).edited_at is None
    assert last_seq(public_room) == 1


def test_replies_are_re_rendered_only_when_their_quote_changes(public_room, alice, bob):
    original = send(public_room, bob, "first line\nsecond line")
    send(public_room, alice, "reply", reply_to=original.pk)
    below = services.message_edit(
        room=public_room, user=bob, message_id=original.pk, body="first line\nother second"
    )
    assert [e["id"] for e in below.change.rendered()] == [original.pk]
    top = services.message_edit(
        room=public_room, user=bob, message_id=original.pk, body="new first\nother second"
    )
    assert len(top.change.rendered()) == 2


def test_a_message_takes_a_bounded_number_of_different_reactions(public_room, alice, bob, settings):
    settings.PARLEY_REACTIONS_PER_MESSAGE = 3
    message = send(public_room, alice)
    for emoji in ["👍", "🎉", "🚀"]:
        services.reaction_add(room=public_room, user=alice, message_id=message.pk, emoji=emoji)
    with pytest.raises(ValidationError) as refused:
        services.reaction_add(room=public_room, user=alice, message_id=message.pk, emoji="🔥")
    assert "at most 3" in refused.value.messages[0]
    # One more person with an emoji already there is fine.
    services.reaction_add(room=public_room, user=bob, message_id=message.pk, emoji="👍")
    assert Reaction.objects.filter(message=message).count() == 4


def test_a_reaction_names_its_first_people_and_counts_the_rest(
    public_room, make_user, alice, settings
):
    settings.PARLEY_REACTION_NAMES_SHOWN = 2
    message = send(public_room, alice)
    for n in range(5):
        user = make_user(display_name=f"Fan {n}")
        result = services.reaction_add(
            room=public_room, user=user, message_id=message.pk, emoji="👍"
        )
    (summary,) = result.message.reaction_summary
    assert (summary["count"], summary["names"], summary["others"]) == (5, ["Fan 0", "Fan 1"], 3)
    assert 'title="Fan 0, Fan 1 +3"' in result.change.rendered()[0]["html"]


def test_deleting_is_rate_limited_and_a_refused_delete_takes_no_lock(
    public_room, alice, bob, settings
):
    settings.PARLEY_MESSAGE_RATE = (2, 10)
    theirs = send(public_room, alice, "theirs")
    for _ in range(5):  # refused before the rate limit and before the room's lock
        with pytest.raises(NotAllowed):
            services.message_delete(room=public_room, user=bob, message_id=theirs.pk)
    assert last_seq(public_room) == 1
    mine = [
        services.message_send(room=public_room, author=bob, body=f"b{i}").message for i in (1, 2)
    ]
    for message in mine:
        services.message_delete(room=public_room, user=bob, message_id=message.pk)
    extra = send(public_room, alice, "alice's")
    services.message_delete(room=public_room, user=alice, message_id=extra.pk)
    services.message_delete(room=public_room, user=alice, message_id=theirs.pk)
    with pytest.raises(services.RateLimited):  # the third delete in the window
        services.message_delete(room=public_room, user=alice, message_id=extra.pk)
