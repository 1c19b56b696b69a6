"""Mentions: what counts as one (formatting), who it resolves to (the service, one query), the
@room policy, the rows and events an edit or a delete leaves."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.chat import realtime, selectors, services
from apps.chat.formatting import mention_names, render_markdown, render_message
from apps.chat.models import Mention, Message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def unlimited(settings):
    settings.PARLEY_MESSAGE_RATE = (100_000, 10)
    settings.PARLEY_ROOM_ADMIN_RATE = (100_000, 60)


# --- formatting ------------------------------------------------------------------------------

PEOPLE = {"bob": (2, "bob"), "carol": (3, "Carol")}


def resolve(names):
    return {name: PEOPLE[name] for name in names if name in PEOPLE}


@pytest.mark.parametrize(
    "source, html, ids, room",
    [
        ("hi @bob", '<p>hi <span data-mention="2">@bob</span></p>', [2], False),
        ("@BOB!", '<p><span data-mention="2">@bob</span>!</p>', [2], False),
        ("thanks @carol.", '<p>thanks <span data-mention="3">@Carol</span>.</p>', [3], False),
        ("@room, lunch", '<p><span data-mention="room">@room</span>, lunch</p>', [], True),
        ("@Room", '<p><span data-mention="room">@room</span></p>', [], True),
        ("@nobody here", "<p>@nobody here</p>", [], False),
        ("`@bob`", "<p><code>@bob</code></p>", [], False),
        ("```\n@bob @room\n```", "<pre><code>@bob @room\n</code></pre>", [], False),
        ("    @bob", "<pre><code>@bob\n</code></pre>", [], False),
        ("bob@example.com", None, [], False),  # an e-mail address (linkified), no mention
        ("x@bob", "<p>x@bob</p>", [], False),
        ("a.@bob", "<p>a.@bob</p>", [], False),
        ("@@bob", "<p>@@bob</p>", [], False),
        ("\\@bob", "<p>@bob</p>", [], False),  # escaped
        ("a_@bob", "<p>a_@bob</p>", [], False),
        ("[@bob](https://example.com)", None, [], False),  # inside a link
        ("https://example.com/@bob", None, [], False),
        ("**@bob** _@carol_", None, [2, 3], False),
        ("> @bob\n- @carol", None, [2, 3], False),
        ("@bob @bob @carol", None, [2, 3], False),
        ("(@bob)", '<p>(<span data-mention="2">@bob</span>)</p>', [2], False),
        ("@", "<p>@</p>", [], False),
        ("@.", "<p>@.</p>", [], False),
    ],
)
def test_what_is_a_mention(source, html, ids, room):
    rendered = render_message(source, resolve=resolve)
    if html is not None:
        assert rendered.html == html
    assert rendered.mention_ids == ids
    assert rendered.mentions_room is room
    if not ids and not room:
        assert "data-mention" not in rendered.html


def test_the_username_is_escaped():
    html = render_message("@odd", resolve=lambda names: {"odd": (4, "<odd&>")}).html
    assert html == '<p><span data-mention="4">@&lt;odd&amp;&gt;</span></p>'


def test_raw_html_spans_are_text():
    html = render_message('<span data-mention="2" onclick="x()">@x</span>', resolve=resolve).html
    assert "<span" not in html


def test_resolve_is_called_once_with_lowercase_names_and_not_for_room_alone():
    calls = []

    def counting(names):
        calls.append(list(names))
        return resolve(names)

    render_message("@Bob and @bob and @CAROL and @room", resolve=counting)
    assert calls == [["bob", "carol"]]
    calls.clear()
    render_message("@room only, and `@bob`", resolve=counting)
    render_message("no at sign", resolve=counting)
    assert calls == []


def test_render_markdown_still_works_without_a_resolver():
    assert render_markdown("**hi** @bob") == "<p><strong>hi</strong> @bob</p>"
    assert render_markdown("@room") == '<p><span data-mention="room">@room</span></p>'


def test_mention_names():
    assert mention_names("@Bob, @room and `@carol`") == ["bob", "room"]
    assert mention_names("plain") == []


# --- the service -----------------------------------------------------------------------------


@pytest.fixture
def room(alice, bob, carol):
    room = services.room_create(name="general", creator=alice)
    for user in (bob, carol):
        services.room_join(room=room, user=user)
    return room


def send(room, author, body):
    return services.message_send(room=room, author=author, body=body).message


def test_a_mention_resolves_case_insensitively_to_active_users(room, alice, bob, make_user):
    make_user("sleeper", is_active=False)
    dave = make_user("Dave")  # not a member: a public room is visible to him
    message = send(room, alice, "@BOB @dave @sleeper @ghost")
    assert message.mention_ids == sorted([bob.pk, dave.pk])
    assert set(Mention.objects.filter(message=message).values_list("user_id", flat=True)) == {
        bob.pk,
        dave.pk,
    }
    assert f'<span data-mention="{bob.pk}">@bob</span>' in message.html
    assert f'<span data-mention="{dave.pk}">@Dave</span>' in message.html
    assert "@sleeper" in message.html and "@ghost" in message.html
    assert not message.mentions_room


@pytest.mark.parametrize("typed", ["Émile", "émile", "ÉMILE", "éMiLe"])
def test_a_mention_of_a_non_ascii_username_resolves_ignoring_case(room, alice, make_user, typed):
    """SQLite's lower() folds ASCII only: "@Émile" once resolved to nobody there."""
    emile = make_user("Émile")
    make_user("É.ile")  # "." is no regex wildcard: "Éxile" is not "É.ile"
    message = send(room, alice, f"bonjour @{typed} et @éxile")
    assert message.mention_ids == [emile.pk]
    assert f'<span data-mention="{emile.pk}">@Émile</span>' in message.html


def test_non_ascii_member_names_resolve_ignoring_case(alice, make_user):
    emile, zoe = make_user("Émile"), make_user("Zoë")
    group = services.room_create(
        name="g", creator=alice, private=True, members=["émile", "ZOË", "Émile"]
    )
    assert set(group.memberships.values_list("user_id", flat=True)) == {alice.pk, emile.pk, zoe.pk}
    assert services.member_add(room=group, user=alice, username="ÉMILE")[0].user_id == emile.pk
    assert send(group, alice, "@zoë").mention_ids == [zoe.pk]


def test_of_two_accounts_differing_in_case_the_exact_spelling_wins(alice, make_user):
    make_user("Émile")
    exact = make_user("émile")  # made by an admin: sign-up refuses a case variant
    group = services.room_create(name="g", creator=alice, private=True, members=["émile"])
    assert set(group.memberships.values_list("user_id", flat=True)) == {alice.pk, exact.pk}


def test_in_a_private_room_only_members_resolve(alice, bob, carol):
    group = services.room_create(name="g", creator=alice, private=True, members=["bob"])
    message = send(group, alice, "@bob @carol")
    assert message.mention_ids == [bob.pk]
    dm, _ = services.dm_get_or_create(user=alice, other=bob)
    assert send(dm, alice, "@bob @carol").mention_ids == [bob.pk]


def test_at_room_sets_mentions_room(room, alice):
    message = send(room, alice, "@room hello")
    assert message.mentions_room
    assert Message.objects.get(pk=message.pk).mentions_room


def test_owners_may_restrict_at_room(room, alice, bob):
    services.room_update(room=room, user=alice, room_mentions="owners")
    with pytest.raises(ValidationError) as exc:
        send(room, bob, "@room look")
    assert exc.value.messages == ["Only the room's owners may mention @room here."]
    assert exc.value.code == "mentions"
    assert send(room, alice, "@room look").mentions_room  # an owner may
    assert not send(room, bob, "`@room` is code").mentions_room


def test_at_most_50_people(room, alice, make_user):
    names = [make_user(f"p{i}").username for i in range(51)]
    with pytest.raises(ValidationError) as exc:
        send(room, alice, " ".join("@" + name for name in names))
    assert exc.value.code == "mentions"
    assert len(send(room, alice, " ".join("@" + n for n in names[:50])).mention_ids) == 50


def test_a_body_without_at_sign_costs_no_mention_query(room, alice, django_assert_num_queries):
    send(room, alice, "warm up")
    with CaptureQueriesContext(connection) as plain:
        send(room, alice, "plain text")
    with CaptureQueriesContext(connection) as named:
        send(room, alice, "hi @bob")
    # One SELECT of the users, one INSERT of the rows.
    assert len(named.captured_queries) == len(plain.captured_queries) + 2
    with CaptureQueriesContext(connection) as room_only:
        send(room, alice, "hi @room")
    assert len(room_only.captured_queries) == len(plain.captured_queries)


def test_the_change_event_carries_the_mentions(room, alice, bob):
    result = services.message_send(room=room, author=alice, body="@bob @room hi")
    meta = realtime.change_meta(result.change.messages[0])
    assert (meta["kind"], meta["mentions"], meta["everyone"], meta["before"]) == (
        "new",
        [bob.pk],
        True,
        None,
    )


def test_an_edit_recomputes_mentions_and_says_what_they_were(room, alice, bob, carol):
    message = send(room, alice, "hi @bob")
    result = services.message_edit(room=room, user=alice, message_id=message.pk, body="hi @carol")
    edited = result.message
    assert edited.mention_ids == [carol.pk]
    assert edited.mentions_before == {"mentions": [bob.pk], "everyone": False}
    assert list(Mention.objects.filter(message=message).values_list("user_id", flat=True)) == [
        carol.pk
    ]
    meta = realtime.change_meta(edited)
    assert meta["kind"] == "update" and meta["mentions"] == [carol.pk]
    assert meta["before"] == {"mentions": [bob.pk], "everyone": False}

    result = services.message_edit(
        room=room, user=alice, message_id=message.pk, body="hi @carol @room"
    )
    assert result.message.mentions_before == {"mentions": [carol.pk], "everyone": False}
    assert Message.objects.get(pk=message.pk).mentions_room


def test_an_edit_that_keeps_the_mentions_has_no_before(room, alice, bob):
    message = send(room, alice, "hi @bob")
    result = services.message_edit(room=room, user=alice, message_id=message.pk, body="hey @bob")
    assert getattr(result.message, "mentions_before", None) is None
    assert realtime.change_meta(result.message)["before"] is None


def test_an_edit_may_keep_an_at_room_the_policy_now_refuses(room, alice, bob):
    message = send(room, bob, "@room hi")
    services.room_update(room=room, user=alice, room_mentions="owners")
    services.message_edit(room=room, user=bob, message_id=message.pk, body="@room hello")
    other = send(room, bob, "plain")
    with pytest.raises(ValidationError):
        services.message_edit(room=room, user=bob, message_id=other.pk, body="@room now")


def test_a_delete_keeps_the_rows_and_its_event_says_what_it_had(room, alice, bob):
    message = send(room, alice, "@bob @room")
    result = services.message_delete(room=room, user=alice, message_id=message.pk)
    meta = realtime.change_meta(result.message)
    assert meta["kind"] == "delete" and meta["mentions"] == [bob.pk] and meta["everyone"]
    assert Mention.objects.filter(message=message).count() == 1
    # ...and it counts for nothing.
    assert selectors.unread_states(user_id=bob.pk)[room.pk].mentions == 0


def test_timeline_reads_carry_mention_ids_without_a_query(room, alice, bob, carol):
    send(room, alice, "@bob")
    send(room, alice, "@bob @carol")
    send(room, alice, "nobody")
    messages = selectors.message_list_latest(room=room)
    with CaptureQueriesContext(connection) as ctx:
        ids = [m.mention_ids for m in messages]
    assert ids == [[bob.pk], sorted([bob.pk, carol.pk]), []]
    assert ctx.captured_queries == []
    changes = selectors.message_changes_after(room=room, after=0, limit=10)
    assert [m.mention_ids for m in changes] == ids


def test_mention_ids_on_a_plain_instance_queries_once(room, alice, bob):
    pk = send(room, alice, "@bob").pk
    message = Message.objects.get(pk=pk)
    assert message.mention_ids == [bob.pk]
    assert Message().mention_ids == []


def test_the_username_room_is_reserved_at_sign_up(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "Room",
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert not get_user_model().objects.filter(username__iexact="room").exists()


def test_mention_has_no_redundant_single_column_indexes():
    """The unique (message, user) and the (user, room, seq) indexes lead with message and
    user: no index of its own on either (each would cost a write per mention for nothing)."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "chat_mention")
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"] or c["unique"]}
    assert ("message_id",) not in indexed and ("user_id",) not in indexed
    assert {("message_id", "user_id"), ("user_id", "room_id", "seq"), ("room_id",)} <= indexed
