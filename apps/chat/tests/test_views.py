"""HTML views: pages, htmx partials and the non-websocket fallbacks."""

import pytest
from django.urls import reverse

from apps.chat import services
from apps.chat.models import Message, Room

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
    assert private_room.get_absolute_url() in html
    assert "Bob" in html  # the private room's title is the other participant


def test_home_hides_other_peoples_conversations(client, carol, private_room):
    client.force_login(carol)
    assert private_room.get_absolute_url() not in client.get(reverse("chat:home")).content.decode()


def test_room_list_partial_is_a_fragment(alice_client, public_room):
    response = alice_client.get(reverse("chat:room_list"), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="room-list"')
    assert "<html" not in html


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
    # session + user + room (the access rule) + whether the viewer manages it + one page of
    # messages with authors, profiles and replied-to messages with theirs + their reactions
    # with who reacted + the viewer's profile (header)
    with django_assert_num_queries(7):
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
    # session + user + room (the access rule) + one page of messages with authors, profiles and
    # replied-to messages + their reactions with who reacted
    with django_assert_num_queries(5):
        assert alice_client.get(url).status_code == 200
