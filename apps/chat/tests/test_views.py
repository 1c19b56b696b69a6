"""HTML views: pages, htmx partials and the non-websocket fallbacks."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.chat import selectors, services
from apps.chat.models import Membership, Message, Room

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_log_in(client, public_room):
    for url in (reverse("chat:home"), public_room.get_absolute_url()):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_home_lists_public_rooms_and_my_conversations(alice_client, public_room, private_room):
    html = alice_client.get(reverse("chat:home")).content.decode()
    assert "General chat" in html
    assert public_room.get_absolute_url() in html
    # The conversation is in the sidebar, titled by the other participant.
    assert f'data-testid="room-link-{private_room.pk}"' in html
    assert private_room.get_absolute_url() in html
    assert "Bob" in html


def test_home_hides_other_peoples_conversations(client, carol, private_room):
    client.force_login(carol)
    assert private_room.get_absolute_url() not in client.get(reverse("chat:home")).content.decode()


def test_room_list_partial_is_a_fragment(alice_client, public_room):
    response = alice_client.get(reverse("chat:room_list"), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="room-list"')
    assert "<html" not in html
    assert "hx-trigger" not in html  # no polling: the user's stream says when to fetch it


def test_htmx_room_create_redirects_the_client_into_the_new_room(alice_client):
    response = alice_client.post(
        reverse("chat:room_create"), {"name": " Ops "}, headers={"HX-Request": "true"}
    )
    room = Room.objects.get()
    assert room.name == "Ops"
    assert response["HX-Redirect"] == room.get_absolute_url()


def test_htmx_room_create_shows_errors_inline(alice_client, public_room):
    response = alice_client.post(
        reverse("chat:room_create"), {"name": "GENERAL"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<form id="room-create-form"')
    assert "already exists" in html
    assert 'aria-invalid="true"' in html
    assert Room.objects.count() == 1


def test_plain_room_create_redirects_or_shows_the_page_with_errors(alice_client):
    response = alice_client.post(reverse("chat:room_create"), {"name": "plain"})
    assert response.status_code == 302
    response = alice_client.post(reverse("chat:room_create"), {"name": ""})
    assert response.status_code == 400
    assert "Enter a room name." in response.content.decode()  # the service's word for it


def test_room_create_requires_csrf(client, alice):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    assert csrf_client.post(reverse("chat:room_create"), {"name": "x"}).status_code == 403
    assert Room.objects.count() == 0


def test_room_page_shows_the_last_50_messages_oldest_first(
    alice_client, public_room, alice, unlimited
):
    for i in range(1, 56):
        services.message_send(room=public_room, author=alice, body=f"message number {i}")
    html = alice_client.get(public_room.get_absolute_url()).content.decode()
    assert "message number 5<" not in html
    assert "message number 6<" in html and "message number 55<" in html
    assert html.index("message number 6<") < html.index("message number 55<")
    assert f'ws-connect="/ws/chat/room/{public_room.pk}/"' in html
    assert 'name="body"' in html and "ws-send" in html
    assert 'aria-live="polite"' in html
    assert "Load older messages" in html
    assert f"#1 in {public_room.pk}" not in html  # no Message objects leak into the flash area


@pytest.mark.parametrize("history", [60, 180])
def test_room_page_query_count_does_not_grow_with_history(
    alice_client,
    public_room,
    alice,
    bob,
    carol,
    django_assert_num_queries,
    unlimited,
    history,
    settings,
):
    """The same count whatever the history: replies (their quotes: the replied-to message and
    its author's profile, on the page or above it) and reactions by several people (with
    their names) come with the page's messages, not one query per message."""
    settings.PARLEY_REACTION_RATE = (1_000_000, 10)
    people = [alice, bob, carol]
    messages = []
    for i in range(history):
        reply_to = messages[i - 7].pk if i % 3 == 0 and i >= 7 else None
        result = services.message_send(
            room=public_room, author=people[i % 3], body=f"m{i}", reply_to=reply_to
        )
        messages.append(result.message)
        pk = result.message.pk
        for who in people[: i % 4]:  # none, one, two or all three of them
            services.reaction_add(room=public_room, user=who, message_id=pk, emoji="👍")
        if i % 5 == 0:
            services.reaction_add(room=public_room, user=carol, message_id=pk, emoji="🎉")
    # session + user + room (the access rule) + whether the viewer manages it + the sidebar
    # (the viewer's memberships with their unread counts; it also gives the viewer's pointer
    # and setting here) + one page of messages with authors, profiles, replied-to messages
    # with theirs and mentioned ids + their reactions with who reacted + the viewer's profile
    # + the read receipts' members (at most 11 rows: issue 11)
    with django_assert_num_queries(9):
        html = alice_client.get(public_room.get_absolute_url()).content.decode()
    replies = [m for m in messages[-50:] if m.reply_to_id]
    assert len(replies) >= 16 and min(m.reply_to_id for m in replies) < messages[-50].pk
    for reply in replies:  # quoted with the original's author and first line
        original = messages[[m.pk for m in messages].index(reply.reply_to_id)]
        assert f'data-jump="{reply.reply_to_id}"' in html and f">{original.body}<" in html
    assert f'data-users="{alice.pk} {bob.pk}"' in html
    assert f'data-users="{alice.pk} {bob.pk} {carol.pk}"' in html
    assert 'title="Alice, Bob, Carol"' in html and 'data-emoji="🎉"' in html


def test_message_bodies_are_escaped(alice_client, public_room, alice):
    services.message_send(room=public_room, author=alice, body="<img src=x onerror=alert(1)>")
    html = alice_client.get(public_room.get_absolute_url()).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_private_room_is_404_for_outsiders_and_missing_rooms(client, carol, private_room):
    client.force_login(carol)
    assert client.get(private_room.get_absolute_url()).status_code == 404
    assert client.get(reverse("chat:room_detail", kwargs={"pk": 999999})).status_code == 404
    history = reverse("chat:room_history", kwargs={"pk": private_room.pk}) + "?before=10"
    assert client.get(history).status_code == 404
    send = reverse("chat:message_send", kwargs={"pk": private_room.pk})
    assert client.post(send, {"body": "hi"}).status_code == 404
    assert Message.objects.count() == 0


def test_private_room_title_is_the_other_participant(client, bob, private_room):
    client.force_login(bob)
    assert "Alice" in client.get(private_room.get_absolute_url()).content.decode()


def test_history_pages_go_back_by_seq(alice_client, public_room, alice, unlimited):
    for i in range(1, 121):
        services.message_send(room=public_room, author=alice, body=f"m{i}.")
    url = reverse("chat:room_history", kwargs={"pk": public_room.pk})
    html = alice_client.get(url + "?before=71", headers={"HX-Request": "true"}).content.decode()
    assert "m21." in html and "m70." in html and "m20." not in html and "m71." not in html
    assert "?before=21" in html  # the next "load older" link
    last = alice_client.get(url + "?before=21").content.decode()
    assert "m1." in last and "Load older messages" not in last
    assert alice_client.get(url + "?before=abc").status_code == 400


def test_html_fallback_sends_through_the_service(alice_client, public_room, alice):
    url = reverse("chat:message_send", kwargs={"pk": public_room.pk})
    response = alice_client.post(url, {"body": " hello "})
    assert response.status_code == 302
    assert Message.objects.get().body == "hello"


def test_html_fallback_shows_a_form_error_and_keeps_the_text(alice_client, public_room):
    url = reverse("chat:message_send", kwargs={"pk": public_room.pk})
    response = alice_client.post(url, {"body": "x" * 4001})
    html = response.content.decode()
    assert response.status_code == 400
    assert "at most 4000 characters" in html
    assert "x" * 4001 in html  # the composer keeps the text
    assert Message.objects.count() == 0


def test_message_button_opens_the_private_room(alice_client, alice, bob):
    response = alice_client.post(reverse("chat:dm_open", kwargs={"user_id": bob.pk}))
    room = Room.objects.get(is_private=True)
    assert response["Location"] == room.get_absolute_url()
    again = alice_client.post(reverse("chat:dm_open", kwargs={"user_id": bob.pk}))
    assert again["Location"] == room.get_absolute_url()
    assert Room.objects.filter(is_private=True).count() == 1


def test_message_button_for_unknown_user_or_yourself_is_404(alice_client, alice):
    assert alice_client.post(reverse("chat:dm_open", kwargs={"user_id": 424242})).status_code == 404
    assert (
        alice_client.post(reverse("chat:dm_open", kwargs={"user_id": alice.pk})).status_code == 404
    )


def test_message_button_needs_post(alice_client, bob):
    assert alice_client.get(reverse("chat:dm_open", kwargs={"user_id": bob.pk})).status_code == 405


def test_room_activity_reads_just_now_then_minutes_ago(alice_client, public_room, alice):
    from datetime import timedelta

    from django.utils import timezone

    services.message_send(room=public_room, author=alice, body="x")
    assert "just now" in alice_client.get(reverse("chat:home")).content.decode()
    Room.objects.filter(pk=public_room.pk).update(
        last_message_at=timezone.now() - timedelta(minutes=5)
    )
    assert "5\xa0minutes ago" in alice_client.get(reverse("chat:home")).content.decode()


@pytest.mark.parametrize("history", [60, 180])
def test_history_page_query_count_is_constant(
    alice_client, public_room, alice, bob, unlimited, history, django_assert_num_queries
):
    for i in range(history):
        services.message_send(room=public_room, author=alice if i % 2 else bob, body=str(i))
    url = reverse("chat:room_history", kwargs={"pk": public_room.pk}) + f"?before={history - 5}"
    # session + user + the viewer's profile (its saved language: ProfileLanguageMiddleware) +
    # room (the access rule) + one page of messages with authors, profiles and replied-to
    # messages + their reactions with who reacted
    with django_assert_num_queries(6):
        assert alice_client.get(url).status_code == 200


# --- Issue 10: the sidebar, membership, private groups, room settings -------------------------
# Roles: the owner (alice created the rooms), a member (bob), a non-member of a public room or
# an outsider of a private group (carol), anonymous. Every form is a plain POST that redirects
# (or shows its errors), CSRF included.
IS_MEMBER = re.compile(r"\sdata-member(\s|$)")


@pytest.fixture
def limits_off(settings):
    settings.PARLEY_MESSAGE_RATE = (1_000_000, 10)
    settings.PARLEY_ROOM_CREATE_RATE = (1_000_000, 60)
    settings.PARLEY_ROOM_ADMIN_RATE = (1_000_000, 60)


@pytest.fixture
def joined_room(public_room, bob, limits_off):
    """general: alice owns it, bob joined, carol did not."""
    services.room_join(room=public_room, user=bob)
    return public_room


@pytest.fixture
def group(alice, bob, limits_off):
    """A private group: alice owns it, bob is a member, carol is an outsider."""
    return services.room_create(name="team", creator=alice, private=True, members=["bob"])


@pytest.fixture
def as_user(client):
    def log_in(user):
        client.logout()
        if user is not None:
            client.force_login(user)
        return client

    return log_in


def url(name: str, room, *args) -> str:
    return reverse(f"chat:{name}", args=[room.pk, *args])


def test_the_sidebar_lists_my_rooms_groups_and_conversations_with_their_badges(
    alice_client, alice, bob, carol, joined_room, group, private_room
):
    services.message_send(room=joined_room, author=bob, body="hello @alice")
    for i in range(3):
        services.message_send(room=group, author=bob, body=f"g{i}")
    html = alice_client.get(reverse("chat:sidebar")).content.decode()
    assert html.lstrip().startswith('<nav id="sidebar-nav"') and "<html" not in html
    for room in (joined_room, group, private_room):
        assert f'data-testid="room-link-{room.pk}" data-room-id="{room.pk}"' in html
    assert f'data-testid="unread-{joined_room.pk}" aria-hidden="true">1<' in html
    assert f'data-testid="mentions-{joined_room.pk}" aria-hidden="true">@1<' in html
    assert f'data-testid="unread-{group.pk}" aria-hidden="true">3<' in html
    assert f'data-testid="unread-{private_room.pk}" aria-hidden="true"><' in html  # 0: empty
    assert html.index("Rooms") < html.index("general") < html.index("Direct messages")
    assert html.index("Direct messages") < html.index("Bob")  # the DM, titled by the other
    assert 'aria-current="page"' not in html
    current = alice_client.get(reverse("chat:sidebar") + f"?current={group.pk}").content.decode()
    assert current.count('aria-current="page"') == 1
    assert f'data-room-id="{group.pk}" data-kind="private"' in current


def test_the_sidebar_caps_at_99_plus_and_shows_a_dot_for_a_muted_room(
    alice_client, alice, bob, joined_room, limits_off
):
    for i in range(101):
        services.message_send(room=joined_room, author=bob, body=f"m{i}")
    html = alice_client.get(reverse("chat:sidebar")).content.decode()
    assert f'data-testid="unread-{joined_room.pk}" aria-hidden="true">99+<' in html
    services.membership_set_notify(room=joined_room, user=alice, notify="none")
    html = alice_client.get(reverse("chat:sidebar")).content.decode()
    assert "data-muted data-dot" in html
    assert f'data-testid="unread-{joined_room.pk}" aria-hidden="true"><' in html
    # Muted rooms are not in the title's count.
    page = alice_client.get(reverse("chat:home")).content.decode()
    assert '<title data-unread-total="0">General chat' in page


def test_the_title_counts_unread_messages_of_rooms_not_muted(alice_client, bob, joined_room, group):
    services.message_send(room=joined_room, author=bob, body="one")
    services.message_send(room=group, author=bob, body="two")
    services.message_send(room=group, author=bob, body="three")
    html = alice_client.get(reverse("chat:home")).content.decode()
    assert '<title data-unread-total="3">(3) General chat · Parley</title>' in html
    assert "icons/favicon-unread.svg" in html.split("</head>")[0]


def test_the_sidebar_is_for_signed_in_users_only_and_shows_nobody_elses_rooms(
    client, carol, group, private_room
):
    response = client.get(reverse("chat:sidebar"))
    assert response.status_code == 302
    client.force_login(carol)
    html = client.get(reverse("chat:sidebar")).content.decode()
    assert f"room-link-{group.pk}" not in html and f"room-link-{private_room.pk}" not in html
    assert "No rooms yet." in html


def test_the_sidebar_costs_the_same_queries_whatever_the_rooms(
    alice, bob, make_user, limits_off, django_assert_num_queries, client
):
    client.force_login(alice)
    for n in range(6):
        room = services.room_create(name=f"r{n}", creator=alice)
        services.message_send(room=room, author=bob, body="x")
        services.dm_get_or_create(user=alice, other=make_user())
    # session + user + the viewer's profile (its saved language: ProfileLanguageMiddleware) +
    # the memberships with their counts + the DMs' other participants
    with django_assert_num_queries(5):
        assert client.get(reverse("chat:sidebar")).status_code == 200


def test_home_is_the_directory_with_join_buttons_and_no_poll(
    as_user, alice, bob, carol, joined_room
):
    html = as_user(carol).get(reverse("chat:home")).content.decode()
    assert f'data-testid="join-{joined_room.pk}"' in html
    assert "every 30s" not in html and "hx-trigger" not in html.split('id="room-list"')[1][:4000]
    assert "2 members" in html
    html = as_user(bob).get(reverse("chat:home")).content.decode()
    assert f'data-testid="joined-{joined_room.pk}"' in html
    assert f'data-testid="join-{joined_room.pk}"' not in html
    # The create form offers a private group with members (people to pick from).
    assert 'name="private"' in html and 'name="members"' in html
    assert '<option value="carol">Carol</option>' in html


def test_a_private_group_is_created_from_the_home_form(alice_client, alice, bob, carol, limits_off):
    response = alice_client.post(
        reverse("chat:room_create"), {"name": "launch", "private": "on", "members": "bob, carol"}
    )
    room = Room.objects.get(name="launch")
    assert response.status_code == 302 and response["Location"] == room.get_absolute_url()
    assert room.kind == "private"
    roles = dict(Membership.objects.filter(room=room).values_list("user__username", "role"))
    assert roles == {"alice": "owner", "bob": "member", "carol": "member"}


def test_a_private_group_with_an_unknown_member_shows_the_error_at_the_members_field(
    alice_client, limits_off
):
    response = alice_client.post(
        reverse("chat:room_create"), {"name": "launch", "private": "on", "members": "bob nobody"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="room-members-error"' in html and "nobody" in html
    assert Room.objects.filter(name="launch").count() == 0
    # htmx: the form alone, with the error.
    response = alice_client.post(
        reverse("chat:room_create"),
        {"name": "launch", "private": "on", "members": "nobody"},
        headers={"HX-Request": "true"},
    )
    assert response.content.decode().lstrip().startswith('<form id="room-create-form"')
    assert "room-members-error" in response.content.decode()


def test_members_without_private_are_ignored_and_make_a_public_room(alice_client, limits_off):
    response = alice_client.post(reverse("chat:room_create"), {"name": "open", "members": "bob"})
    assert response.status_code == 302
    assert Room.objects.get(name="open").kind == "public"


def test_join_a_public_room_from_the_directory_or_the_room(as_user, carol, joined_room):
    client = as_user(carol)
    response = client.post(url("room_join", joined_room), {"next": "directory"})
    assert response.status_code == 302 and response["Location"] == reverse("chat:home")
    assert Membership.objects.filter(room=joined_room, user=carol).exists()
    # Again (already a member): nothing changes; from the room's header: back into the room.
    response = client.post(url("room_join", joined_room))
    assert response["Location"] == joined_room.get_absolute_url()
    assert Membership.objects.filter(room=joined_room, user=carol).count() == 1


def test_join_from_the_directory_with_htmx_answers_the_directory(as_user, carol, joined_room):
    response = as_user(carol).post(
        url("room_join", joined_room), {"next": "directory"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="room-list"')
    assert f'data-testid="joined-{joined_room.pk}"' in html


def test_join_is_404_for_an_outsider_of_a_group_and_needs_a_login(as_user, carol, group):
    assert as_user(carol).post(url("room_join", group)).status_code == 404
    assert not Membership.objects.filter(room=group, user=carol).exists()
    response = as_user(None).post(url("room_join", group))
    assert response.status_code == 302 and reverse("account_login") in response["Location"]


def test_the_room_page_has_join_for_a_non_member_and_the_menu_for_a_member(
    as_user, alice, bob, carol, joined_room
):
    services.message_send(room=joined_room, author=alice, body="hello")
    html = as_user(carol).get(joined_room.get_absolute_url()).content.decode()
    assert 'data-testid="room-join"' in html
    assert not IS_MEMBER.search(html.split('id="chat"')[1].split(">")[0])
    html = as_user(bob).get(joined_room.get_absolute_url()).content.decode()
    chat = html.split('id="chat"')[1].split(">")[0]
    assert IS_MEMBER.search(chat) and 'data-last-read="' in chat
    assert re.search(r'value="mentions"[^>]* checked', html)
    assert url("room_leave", joined_room) in html
    assert 'data-action="unread"' in html
    assert url("room_settings", joined_room) not in html  # public: only owners get settings
    html = as_user(alice).get(joined_room.get_absolute_url()).content.decode()
    assert url("room_settings", joined_room) in html


def test_the_room_page_carries_the_pointer_for_the_unread_divider_and_my_mention_style(
    as_user, alice, bob, joined_room
):
    services.message_send(room=joined_room, author=alice, body="read")
    state = selectors.unread_states(user_id=bob.pk, room_ids=[joined_room.pk])[joined_room.pk]
    services.room_mark_read(room=joined_room, user=bob, seq=state.through)
    services.message_send(room=joined_room, author=alice, body="new for @bob")
    html = as_user(bob).get(joined_room.get_absolute_url()).content.decode()
    assert f'data-last-read="{state.through}"' in html
    assert f'[data-mention="{bob.pk}"]' in html.split("</style>")[0]  # the nonce'd block
    assert f'<span data-mention="{bob.pk}">@bob</span>' in html
    assert 'id="unread-divider-template"' in html


def test_the_room_page_shows_the_topic(as_user, alice, joined_room):
    services.room_update(room=joined_room, user=alice, topic="All things general")
    html = as_user(alice).get(joined_room.get_absolute_url()).content.decode()
    assert 'data-testid="room-topic">All things general<' in html


def test_leave_a_room_member_non_member_dm_outsider_anonymous(
    as_user, alice, bob, carol, joined_room, group, private_room
):
    client = as_user(bob)
    response = client.post(url("room_leave", joined_room))
    assert response.status_code == 302 and response["Location"] == reverse("chat:home")
    assert not Membership.objects.filter(room=joined_room, user=bob).exists()
    assert "You left general." in client.get(reverse("chat:home")).content.decode()
    # Not a member: nothing to do, back home.
    assert as_user(carol).post(url("room_leave", joined_room)).status_code == 302
    # A direct conversation cannot be left: a page that says so.
    response = as_user(alice).post(url("room_leave", private_room))
    assert response.status_code == 403
    assert "cannot leave a direct conversation" in response.content.decode()
    assert as_user(carol).post(url("room_leave", group)).status_code == 404
    assert as_user(None).post(url("room_leave", group)).status_code == 302
    assert Membership.objects.filter(room=group).count() == 2


def test_settings_page_owner_member_non_member_outsider_anonymous(
    as_user, alice, bob, carol, joined_room, group
):
    html = as_user(alice).get(url("room_settings", group)).content.decode()
    assert 'data-testid="room-update-form"' in html and 'data-testid="member-add-form"' in html
    assert f'data-testid="member-remove-{bob.pk}"' in html
    assert f'data-testid="member-remove-{alice.pk}"' not in html  # yourself: leave instead
    assert url("room_delete", group) in html
    html = as_user(bob).get(url("room_settings", group)).content.decode()
    assert 'data-testid="room-update-form"' not in html and "member-add-form" not in html
    assert "member-remove-" not in html and url("room_delete", group) not in html
    assert f'data-testid="member-{alice.pk}"' in html and 'data-testid="notify-form"' in html
    assert 'data-testid="settings-leave"' in html
    html = as_user(carol).get(url("room_settings", joined_room)).content.decode()
    assert "room-update-form" not in html and "notify-form" not in html
    assert as_user(carol).get(url("room_settings", group)).status_code == 404
    assert as_user(None).get(url("room_settings", group)).status_code == 302


def test_owners_rename_set_the_topic_and_the_room_policy(as_user, alice, group):
    response = as_user(alice).post(
        url("room_settings", group),
        {"name": "core team", "topic": "Shipping v2", "room_mentions": "owners"},
    )
    assert response.status_code == 302 and response["Location"].endswith("?saved=1")
    group.refresh_from_db()
    assert (group.name, group.topic, group.room_mentions) == ("core team", "Shipping v2", "owners")
    html = as_user(alice).get(response["Location"]).content.decode()
    assert 'data-testid="settings-saved"' in html


def test_a_rename_to_a_taken_name_shows_the_error(as_user, alice, joined_room, limits_off):
    other = services.room_create(name="other", creator=alice)
    response = as_user(alice).post(url("room_settings", other), {"name": "GENERAL", "topic": ""})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="settings-name-error"' in html and "already exists" in html
    other.refresh_from_db()
    assert other.name == "other"


def test_only_owners_change_settings(as_user, bob, carol, joined_room, group):
    for who, room in ((bob, group), (bob, joined_room), (carol, joined_room)):
        response = as_user(who).post(url("room_settings", room), {"name": "hijacked"})
        assert response.status_code == 403
        assert "owners" in response.content.decode()
    assert as_user(carol).post(url("room_settings", group), {"name": "x"}).status_code == 404
    assert as_user(None).post(url("room_settings", group), {"name": "x"}).status_code == 302
    assert not Room.objects.filter(name="hijacked").exists()


def test_owners_add_members_to_a_private_group(as_user, alice, bob, carol, group, joined_room):
    response = as_user(alice).post(url("member_add", group), {"username": "carol"})
    assert response.status_code == 302 and response["Location"] == url("room_settings", group)
    assert Membership.objects.filter(room=group, user=carol, role="member").exists()
    response = as_user(alice).post(url("member_add", group), {"username": "nobody"})
    assert response.status_code == 400
    assert 'id="member-add-error"' in response.content.decode()
    # A public room has no member list to manage; members and outsiders may not add.
    response = as_user(alice).post(url("member_add", joined_room), {"username": "carol"})
    assert response.status_code == 403
    assert as_user(bob).post(url("member_add", group), {"username": "alice"}).status_code == 403


def test_outsiders_and_anonymous_cannot_add_members(as_user, carol, group):
    assert as_user(carol).post(url("member_add", group), {"username": "carol"}).status_code == 404
    assert as_user(None).post(url("member_add", group), {"username": "carol"}).status_code == 302
    assert not Membership.objects.filter(room=group, user=carol).exists()


def test_owners_remove_members_but_not_themselves(as_user, alice, bob, carol, group):
    response = as_user(bob).post(url("member_remove", group, alice.pk))
    assert response.status_code == 403
    response = as_user(alice).post(url("member_remove", group, alice.pk))
    assert response.status_code == 400 and "leave" in response.content.decode()
    response = as_user(alice).post(url("member_remove", group, bob.pk))
    assert response.status_code == 302
    assert not Membership.objects.filter(room=group, user=bob).exists()
    # bob is an outsider now: the group is a 404 for him.
    assert as_user(bob).get(group.get_absolute_url()).status_code == 404
    assert as_user(carol).post(url("member_remove", group, alice.pk)).status_code == 404
    assert as_user(None).post(url("member_remove", group, alice.pk)).status_code == 302


def test_delete_asks_first_and_only_owners_may(as_user, alice, bob, carol, group):
    html = as_user(alice).get(url("room_delete", group)).content.decode()
    assert 'data-testid="room-delete-confirm"' in html and "2 members" in html
    assert as_user(bob).get(url("room_delete", group)).status_code == 403
    assert as_user(bob).post(url("room_delete", group)).status_code == 403
    assert as_user(carol).post(url("room_delete", group)).status_code == 404
    assert as_user(None).post(url("room_delete", group)).status_code == 302
    assert Room.objects.filter(pk=group.pk).exists()
    client = as_user(alice)
    response = client.post(url("room_delete", group), {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == reverse("chat:home")
    assert not Room.objects.filter(pk=group.pk).exists()
    assert "team was deleted." in client.get(reverse("chat:home")).content.decode()


def test_members_choose_what_notifies_them(as_user, alice, bob, carol, joined_room, group):
    response = as_user(bob).post(url("room_notify", group), {"notify": "none"})
    assert response.status_code == 302 and response["Location"] == group.get_absolute_url()
    assert Membership.objects.get(room=group, user=bob).notify == "none"
    response = as_user(bob).post(url("room_notify", group), {"notify": "all", "next": "settings"})
    assert response["Location"] == url("room_settings", group)
    response = as_user(bob).post(
        url("room_notify", group), {"notify": "mentions"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith("<form") and "Saved" in html
    assert re.search(r'value="mentions"[^>]* checked', html)
    response = as_user(bob).post(url("room_notify", group), {"notify": "loud"})
    assert response.status_code == 400 and "notify must be one of" in response.content.decode()
    assert Membership.objects.get(room=group, user=bob).notify == "mentions"
    response = as_user(carol).post(url("room_notify", joined_room), {"notify": "all"})
    assert response.status_code == 403
    assert as_user(carol).post(url("room_notify", group), {"notify": "all"}).status_code == 404
    assert as_user(None).post(url("room_notify", group), {"notify": "all"}).status_code == 302


def test_mark_read_and_unread_without_javascript(as_user, alice, bob, carol, joined_room, group):
    for i in range(3):
        services.message_send(room=group, author=alice, body=f"m{i}")
    last = Room.objects.get(pk=group.pk).last_seq
    response = as_user(bob).post(url("room_read", group), {"seq": str(last)})
    assert response.status_code == 302 and response["Location"] == group.get_absolute_url()
    assert Membership.objects.get(room=group, user=bob).last_read_seq == last
    as_user(bob).post(url("room_read", group), {"seq": "1"})  # forward only
    assert Membership.objects.get(room=group, user=bob).last_read_seq == last
    as_user(bob).post(url("room_read", group), {"seq": "1", "force": "on"})  # mark unread
    assert Membership.objects.get(room=group, user=bob).last_read_seq == 1
    assert as_user(bob).post(url("room_read", group), {"seq": "-1"}).status_code == 400
    assert as_user(carol).post(url("room_read", joined_room), {"seq": "1"}).status_code == 403
    assert as_user(carol).post(url("room_read", group), {"seq": "1"}).status_code == 404
    assert as_user(None).post(url("room_read", group), {"seq": "1"}).status_code == 302


def test_too_many_reads_without_javascript_are_429_with_retry_after(as_user, bob, group, settings):
    settings.PARLEY_READ_RATE = (1, 10)
    assert as_user(bob).post(url("room_read", group), {"seq": "0"}).status_code == 302
    response = as_user(bob).post(url("room_read", group), {"seq": "0"})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("name", "data", "extra"),
    [
        ("room_join", {}, ()),
        ("room_leave", {}, ()),
        ("room_notify", {"notify": "none"}, ()),
        ("room_read", {"seq": "0"}, ()),
        ("room_settings", {"name": "csrf"}, ()),
        ("member_add", {"username": "carol"}, ()),
        ("member_remove", {}, ("bob",)),
        ("room_delete", {}, ()),
    ],
)
def test_every_form_needs_its_csrf_token(alice, bob, group, name, data, extra):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    args = [bob.pk if e == "bob" else e for e in extra]
    before = list(Membership.objects.order_by("pk").values_list("room_id", "user_id", "notify"))
    assert client.post(url(name, group, *args), data).status_code == 403
    assert Room.objects.filter(pk=group.pk, name="team").exists()
    after = list(Membership.objects.order_by("pk").values_list("room_id", "user_id", "notify"))
    assert before == after


def test_the_new_pages_need_nothing_the_csp_forbids(as_user, alice, bob, group, joined_room):
    from apps.chat.tests.test_csp import scan

    client = as_user(alice)
    pages = {
        "sidebar": client.get(reverse("chat:sidebar")),
        "settings": client.get(url("room_settings", group)),
        "delete": client.get(url("room_delete", group)),
        "refused": as_user(bob).post(url("room_settings", group), {"name": "x"}),
        "directory": as_user(bob).get(reverse("chat:room_list")),
    }
    client = as_user(alice)
    pages["group room"] = client.get(group.get_absolute_url())
    pages["notify form"] = client.post(
        url("room_notify", group), {"notify": "all"}, headers={"HX-Request": "true"}
    )
    for what, response in pages.items():
        assert response.status_code in (200, 403), what
        page = scan(response.content.decode())
        assert page.problems == [], f"{what}: {page.problems}"


# --- Review fixes: the unread page, the settings form, @room, muted rooms, members ----------
ARTICLE_SEQ = re.compile(r'<article id="message-\d+" data-seq="(\d+)"')


def _page_seqs(html: str) -> list[int]:
    return [int(seq) for seq in ARTICLE_SEQ.findall(html)]


@pytest.mark.parametrize(
    ("read", "unread", "expected"),
    [
        (10, 3, 50),  # a few unread: the usual page
        (10, 60, 65),  # the first unread and five read messages above it
        (10, 120, 125),
        (0, 260, 200),  # further back than 200: room.js loads older pages until it is there
        (70, 0, 50),  # nothing unread
    ],
)
def test_the_room_page_opens_with_the_first_of_many_unread_messages(
    as_user, alice, bob, joined_room, read, unread, expected
):
    for i in range(read):
        services.message_send(room=joined_room, author=alice, body=f"old {i}")
    state = selectors.unread_states(user_id=bob.pk, room_ids=[joined_room.pk])[joined_room.pk]
    services.room_mark_read(room=joined_room, user=bob, seq=state.through, force=True)
    pointer = state.through
    for i in range(unread):
        services.message_send(room=joined_room, author=alice, body=f"new {i}")
    html = as_user(bob).get(joined_room.get_absolute_url()).content.decode()
    seqs = _page_seqs(html)
    assert len(seqs) == min(expected, Message.objects.filter(room=joined_room).count())
    assert seqs == sorted(seqs) and seqs[-1] == Room.objects.get(pk=joined_room.pk).last_seq
    assert f'data-last-read="{pointer}"' in html
    assert f'data-unread-count="{min(unread, 100)}"' in html  # room.js: look further up?
    if unread and expected < 200:
        assert seqs[0] < pointer + 1  # the first unread (pointer + 1) and read ones above it
        assert pointer + 1 in seqs
    # The author (nothing unread) gets the usual page.
    html = as_user(alice).get(joined_room.get_absolute_url()).content.decode()
    assert len(_page_seqs(html)) == min(50, len(seqs))


def test_the_long_unread_page_costs_the_same_queries(
    as_user, alice, bob, joined_room, django_assert_num_queries
):
    state = selectors.unread_states(user_id=bob.pk, room_ids=[joined_room.pk])[joined_room.pk]
    services.room_mark_read(room=joined_room, user=bob, seq=state.through)
    for i in range(150):
        services.message_send(room=joined_room, author=alice, body=f"new {i}")
    client = as_user(bob)
    with django_assert_num_queries(9):  # as above, the read receipts' members included
        html = client.get(joined_room.get_absolute_url()).content.decode()
    assert len(_page_seqs(html)) == 150  # all of them: the first is unread


def test_a_bad_room_policy_is_an_error_not_saved(as_user, alice, bob, group):
    response = as_user(alice).post(
        url("room_settings", group), {"name": "renamed", "topic": "t", "room_mentions": "all"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Select a valid choice" in html and 'role="alert"' in html
    assert 'data-testid="settings-saved"' not in html
    group.refresh_from_db()
    assert (group.name, group.topic, group.room_mentions) == ("team", "", "members")
    # Not an owner: refused, whatever the value.
    response = as_user(bob).post(url("room_settings", group), {"name": "x", "room_mentions": "?"})
    assert response.status_code == 403


def test_the_composer_knows_the_room_policy_and_my_role(as_user, alice, bob, group):
    services.room_update(room=group, user=alice, room_mentions="owners")
    html = as_user(bob).get(group.get_absolute_url()).content.decode()
    assert 'data-role="member"' in html and 'data-room-mentions="owners"' in html
    html = as_user(alice).get(group.get_absolute_url()).content.decode()
    assert 'data-role="owner"' in html and 'data-room-mentions="owners"' in html


def test_a_muted_room_with_unread_messages_says_so_to_screen_readers(
    alice_client, alice, bob, joined_room
):
    services.membership_set_notify(room=joined_room, user=alice, notify="none")
    html = alice_client.get(reverse("chat:sidebar")).content.decode()
    assert "unread messages, muted" not in html.split("data-text-muted-unread")[1].split(">", 1)[1]
    services.message_send(room=joined_room, author=bob, body="psst")
    html = alice_client.get(reverse("chat:sidebar")).content.decode()
    assert "data-sr-counts>, unread messages, muted</span>" in html
    assert 'data-text-muted-unread="unread messages, muted"' in html


def test_the_title_carries_its_prefix_so_a_room_named_like_one_keeps_its_name(
    as_user, alice, bob, limits_off
):
    room = services.room_create(name="(3) x", creator=alice)
    html = as_user(alice).get(room.get_absolute_url()).content.decode()
    assert '<title data-unread-total="0">(3) x · Parley</title>' in html
    services.room_join(room=room, user=bob)
    services.message_send(room=room, author=bob, body="hi")
    html = as_user(alice).get(room.get_absolute_url()).content.decode()
    assert '<title data-unread-total="1">(1) (3) x · Parley</title>' in html


def test_the_delete_page_counts_members_with_one_query(
    as_user, alice, bob, carol, joined_room, django_assert_max_num_queries
):
    services.room_join(room=joined_room, user=carol)
    client = as_user(alice)
    with django_assert_max_num_queries(8) as captured:
        html = client.get(url("room_delete", joined_room)).content.decode()
    assert "all its 3 members" in html
    # No member rows are read for it (room_members selects the profiles).
    assert not any("profiles_profile" in q["sql"] for q in captured.captured_queries[3:-1])


def test_a_public_room_lists_200_members_and_how_many_more(
    as_user, alice, make_user, joined_room, group
):
    people = [make_user(f"member{i:03}") for i in range(203)]
    Membership.objects.bulk_create([Membership(room=joined_room, user=u) for u in people])
    html = as_user(alice).get(url("room_settings", joined_room)).content.decode()
    assert "205 members" in html  # alice (owner), bob and the 203
    assert html.count('data-testid="member-') == 200 + html.count('data-testid="member-list"')
    assert 'data-testid="members-more">and 5 more<' in html
    assert f'data-testid="member-{alice.pk}"' in html  # owners first
    # A private group lists everyone.
    for u in people[:5]:
        services.member_add(room=group, user=alice, username=u.username)
    html = as_user(alice).get(url("room_settings", group)).content.decode()
    assert "7 members" in html and "members-more" not in html


def test_the_composer_carries_the_attachment_limits_and_its_upload_url(
    as_user, alice, group, settings
):
    """room.js refuses what the upload API would refuse, before sending a byte."""
    settings.PARLEY_ATTACHMENT_MAX_BYTES = 1234567
    settings.PARLEY_ATTACHMENTS_PER_MESSAGE = 3
    html = as_user(alice).get(group.get_absolute_url()).content.decode()
    composer = html.split('<form id="composer"', 1)[1].split(">", 1)[0]
    assert 'data-attachment-max-bytes="1234567"' in composer
    assert 'data-attachments-max="3"' in composer
    assert f'data-attachments-url="/api/rooms/{group.pk}/attachments/"' in composer
    assert 'id="attach-input"' in html and 'id="attachment-viewer"' in html
