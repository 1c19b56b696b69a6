"""Incoming webhooks (issue 13): made and revoked by a room's owners only, the secret shown once
and stored hashed, POST /hooks/<secret>/ posts as the webhook's bot through message_send."""

import hashlib
import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

from apps.api.testing import error_of
from apps.chat import services, webhooks
from apps.chat.errors import RoomNotFound
from apps.chat.models import Membership, Message, Webhook
from apps.chat.tests.helpers import joined
from project import http_limits


@pytest.fixture
def hook(public_room, alice):
    """(webhook, secret) of Alice's public room."""
    return webhooks.webhook_create(room=public_room, user=alice, name="Deploys")


@pytest.fixture
def group(alice, bob):
    """A private group of Alice (its owner) and Bob."""
    return services.room_create(name="ops", creator=alice, private=True, members=["bob"])


def _post_json(client, secret, payload, **extra):
    return client.post(
        f"/hooks/{secret}/", json.dumps(payload), content_type="application/json", **extra
    )


def test_create_stores_only_the_hash_and_makes_a_member_bot(public_room, alice, hook):
    webhook, secret = hook
    row = Webhook.objects.get()
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(list(Webhook.objects.values()), default=str)
    assert secret.startswith(row.prefix) and len(row.prefix) < 16
    bot = row.bot.profile
    assert bot.is_bot and bot.bot_owner == alice and bot.name == "Deploys"
    assert not row.bot.has_usable_password()
    assert Membership.objects.filter(room=public_room, user=row.bot).exists()


def test_only_an_owner_makes_lists_or_revokes_webhooks(public_room, private_room, alice, bob, hook):
    services.room_join(room=public_room, user=bob)  # a member, not an owner
    webhook, _secret = hook
    for call in (
        lambda: webhooks.webhook_create(room=public_room, user=bob, name="Mine"),
        lambda: webhooks.webhook_list_for_room(room=public_room, user=bob),
        lambda: webhooks.webhook_revoke(room=public_room, user=bob, webhook_id=webhook.pk),
        lambda: webhooks.webhook_create(room=private_room, user=bob, name="Mine"),
    ):
        with pytest.raises(RoomNotFound):
            call()
    assert Webhook.objects.count() == 1


def test_post_json_posts_as_the_bot_and_answers_ok(client, public_room, hook):
    webhook, secret = hook
    response = _post_json(client, secret, {"text": "deploy done", "username": "ignored"})

    message = Message.objects.get()
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": message.pk}
    assert (message.room, message.author, message.body) == (public_room, webhook.bot, "deploy done")
    assert Webhook.objects.get().last_used_at is not None


def test_post_form_field_text(client, hook):
    _webhook, secret = hook
    response = client.post(f"/hooks/{secret}/", {"text": "from a form"})
    assert response.status_code == 200
    assert Message.objects.get().body == "from a form"


def test_the_message_shows_in_the_room_with_the_bot_badge(client, alice_client, public_room, hook):
    _post_json(client, hook[1], {"text": "shipped v2"})
    page = alice_client.get(public_room.get_absolute_url()).content.decode()
    assert "shipped v2" in page and 'data-testid="bot-badge"' in page


def test_the_hook_needs_no_csrf_and_no_session(hook):
    csrf_client = Client(enforce_csrf_checks=True)
    response = _post_json(csrf_client, hook[1], {"text": "hi"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "about_text"),
    [
        ("{}", "application/json", True),
        ('{"text": ""}', "application/json", True),
        ('{"text": "   "}', "application/json", True),
        ('{"text": 5}', "application/json", True),
        ('{"text": null}', "application/json", True),
        ('["text"]', "application/json", False),
        ("not json", "application/json", False),
        (b"\xff\xfe", "application/json", False),
        (json.dumps({"text": "x" * 4001}), "application/json", True),
        ("", "application/x-www-form-urlencoded", True),
    ],
)
def test_missing_empty_bad_or_too_long_text_is_400_json(
    client, hook, body, content_type, about_text
):
    """The API's one error shape: a body that is not JSON (an object) is a ``parse_error``
    about the request; a missing or refused text is an error on the ``text`` field."""
    response = client.post(f"/hooks/{hook[1]}/", body, content_type=content_type)
    assert response.status_code == 400
    error = error_of(response)
    if about_text:
        assert list(error["fields"]) == ["text"]
        assert error["message"] == f"text: {error['fields']['text'][0]}"
        assert error["code"] != "parse_error"
    else:
        assert error["code"] == "parse_error" and error["fields"] == {}
    assert Message.objects.count() == 0


@pytest.mark.parametrize("secret", ["hook_wrong", "x" * 500, "%00"])
def test_a_wrong_secret_is_404_json(client, hook, secret):
    response = _post_json(client, secret, {"text": "hi"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert error_of(response)["code"] == "not_found"
    assert Message.objects.count() == 0


def test_a_revoked_webhook_stops_at_once(client, public_room, alice, hook):
    webhook, secret = hook
    assert _post_json(client, secret, {"text": "one"}).status_code == 200
    webhooks.webhook_revoke(room=public_room, user=alice, webhook_id=webhook.pk)
    assert _post_json(client, secret, {"text": "two"}).status_code == 404
    assert Message.objects.count() == 1


def test_get_is_405_json(client, hook):
    response = client.get(f"/hooks/{hook[1]}/")
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert error_of(response)["code"] == "method_not_allowed"


def test_the_rate_limit_is_per_webhook_429_with_retry_after(
    client, settings, public_room, alice, hook
):
    settings.PARLEY_WEBHOOK_RATE = (2, 60)
    other, other_secret = webhooks.webhook_create(room=public_room, user=alice, name="Other")
    secret = hook[1]
    assert _post_json(client, secret, {"text": "1"}).status_code == 200
    assert _post_json(client, secret, {"text": "2"}).status_code == 200
    limited = _post_json(client, secret, {"text": "3"})

    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert error_of(limited)["code"] == "throttled"
    assert _post_json(client, other_secret, {"text": "other"}).status_code == 200
    assert Message.objects.count() == 3


def test_the_limit_window_passes(client, settings, monkeypatch, hook):
    from apps.core import ratelimit

    settings.PARLEY_WEBHOOK_RATE = (1, 60)
    assert _post_json(client, hook[1], {"text": "1"}).status_code == 200
    assert _post_json(client, hook[1], {"text": "2"}).status_code == 429
    monkeypatch.setattr(ratelimit, "_clock", lambda: 1_800_000_000.0 + 61)
    assert _post_json(client, hook[1], {"text": "3"}).status_code == 200


def test_a_private_group_webhook_posts_and_its_bot_is_a_member(client, group, alice):
    webhook, secret = webhooks.webhook_create(room=group, user=alice, name="Alerts")
    assert Membership.objects.filter(room=group, user=webhook.bot).exists()
    assert _post_json(client, secret, {"text": "disk full"}).status_code == 200
    assert Message.objects.get().room == group


def test_a_direct_conversation_has_no_webhooks(private_room, alice):
    with pytest.raises(RoomNotFound):
        webhooks.webhook_create(room=private_room, user=alice, name="Alerts")


def test_a_bot_removed_from_its_private_group_can_no_longer_post(client, group, alice):
    webhook, secret = webhooks.webhook_create(room=group, user=alice, name="Alerts")
    services.member_remove(room=group, user=alice, member_id=webhook.bot_id)
    assert _post_json(client, secret, {"text": "disk full"}).status_code == 404
    assert Message.objects.count() == 0


def test_deleting_the_room_deletes_its_webhooks(client, public_room, alice, hook):
    services.room_delete(room=public_room, user=alice)
    assert Webhook.objects.count() == 0
    assert _post_json(client, hook[1], {"text": "hi"}).status_code == 404


def test_the_body_cap_of_the_hook_route_is_small(settings):
    settings.PARLEY_HTTP_MAX_BODY = 10 * 1024 * 1024
    scope = {"type": "http", "method": "POST", "path": "/hooks/abc/"}
    assert http_limits._cap(scope, settings.PARLEY_HTTP_MAX_BODY) == 64 * 1024
    other = {"type": "http", "method": "POST", "path": "/chat/room/1/send/"}
    assert http_limits._cap(other, settings.PARLEY_HTTP_MAX_BODY) == 10 * 1024 * 1024


def test_one_lookup_query_then_the_send_path(client, hook, django_assert_max_num_queries):
    with django_assert_max_num_queries(14):
        _post_json(client, hook[1], {"text": "counted"})


# --- the settings page ------------------------------------------------------------------------


def test_settings_page_makes_a_webhook_and_shows_its_url_once(alice_client, public_room):
    url = reverse("chat:webhook_create", args=[public_room.pk])
    response = alice_client.post(url, {"name": "Deploys"})
    hook_url = response.context["webhook_url"]
    secret = hook_url.rstrip("/").rsplit("/", 1)[-1]
    assert response.status_code == 200
    assert hook_url.encode() in response.content
    assert Webhook.objects.get().key_hash == hashlib.sha256(secret.encode()).hexdigest()

    again = alice_client.get(reverse("chat:room_settings", args=[public_room.pk]))
    assert secret.encode() not in again.content
    assert Webhook.objects.get().prefix.encode() in again.content
    assert b'data-testid="webhook-row"' in again.content


def test_settings_page_refuses_an_empty_name_with_a_form_error(alice_client, public_room):
    url = reverse("chat:webhook_create", args=[public_room.pk])
    response = alice_client.post(url, {"name": ""})
    assert response.status_code == 400
    assert response.context["webhook_form"].errors["name"]
    assert Webhook.objects.count() == 0


def test_a_member_cannot_make_or_revoke_and_sees_no_section(client, bob, public_room, hook):
    services.room_join(room=public_room, user=bob)
    client.force_login(bob)
    page = client.get(reverse("chat:room_settings", args=[public_room.pk]))
    assert b'data-testid="webhooks"' not in page.content
    create = client.post(reverse("chat:webhook_create", args=[public_room.pk]), {"name": "x"})
    revoke = client.post(reverse("chat:webhook_revoke", args=[public_room.pk, hook[0].pk]))
    assert create.status_code == revoke.status_code == 404
    assert Webhook.objects.count() == 1


def test_settings_page_revokes(alice_client, public_room, hook):
    url = reverse("chat:webhook_revoke", args=[public_room.pk, hook[0].pk])
    assert alice_client.post(url).status_code == 302
    assert Webhook.objects.count() == 0


def test_the_settings_forms_need_csrf(alice, public_room, hook):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    create = csrf_client.post(reverse("chat:webhook_create", args=[public_room.pk]), {"name": "x"})
    revoke = csrf_client.post(reverse("chat:webhook_revoke", args=[public_room.pk, hook[0].pk]))
    assert create.status_code == revoke.status_code == 403


# --- the broadcast --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_webhook_post_is_broadcast_to_the_room(public_room, alice):
    _webhook, secret = await database_sync_to_async(webhooks.webhook_create)(
        room=public_room, user=alice, name="Deploys"
    )
    socket = await joined(public_room.pk, alice)
    try:
        response = await database_sync_to_async(_post_json)(Client(), secret, {"text": "live!"})
        assert response.status_code == 200
        frame = await socket.receive_from(timeout=5)
        assert "live!" in frame
        assert 'data-testid="bot-badge"' in frame
    finally:
        await socket.disconnect()
