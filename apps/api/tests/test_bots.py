"""/api/bots/ and /api/rooms/<id>/webhooks/ (issue 13): the owner's only, everyone else 404."""

import hashlib

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import AccessToken
from apps.api.testing import error_of
from apps.chat import services
from apps.chat.models import Message, Webhook
from apps.profiles import bots

User = get_user_model()


@pytest.fixture
def alices_bot(alice):
    return bots.bot_create(owner=alice, name="Deploy")


@pytest.fixture
def group(alice, bob):
    return services.room_create(name="ops", creator=alice, private=True, members=["bob"])


def test_bot_lifecycle_over_the_api(as_alice, alice):
    made = as_alice.post("/api/bots/", {"name": "Greeter"}, format="json")
    assert made.status_code == 201
    bot = made.json()
    assert bot["username"] == "greeter-bot" and bot["is_bot"] is True and bot["name"] == "Greeter"

    listed = as_alice.get("/api/bots/").json()["results"]
    assert [b["id"] for b in listed] == [bot["id"]]
    renamed = as_alice.patch(f"/api/bots/{bot['id']}/", {"name": "Welcomer"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Welcomer"

    token = as_alice.post(f"/api/bots/{bot['id']}/tokens/", {"name": "CI"}, format="json")
    assert token.status_code == 201
    secret = token.json()["token"]
    row = AccessToken.objects.get(user_id=bot["id"])
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(as_alice.get(f"/api/bots/{bot['id']}/tokens/").content)

    revoked = as_alice.delete(f"/api/bots/{bot['id']}/tokens/{row.pk}/")
    assert revoked.status_code == 204 and not AccessToken.objects.filter(pk=row.pk).exists()
    assert as_alice.delete(f"/api/bots/{bot['id']}/").status_code == 204
    assert not User.objects.filter(pk=bot["id"]).exists()


def test_a_bot_token_works_on_the_api_as_the_bot(as_alice, anon, public_room):
    bot = as_alice.post("/api/bots/", {"name": "Poster"}, format="json").json()
    secret = as_alice.post(f"/api/bots/{bot['id']}/tokens/", {"name": "t"}, format="json").json()[
        "token"
    ]
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    me = anon.get("/api/profiles/me/")
    sent = anon.post(f"/api/rooms/{public_room.pk}/messages/", {"body": "beep"}, format="json")

    assert me.json()["id"] == bot["id"] and me.json()["is_bot"] is True
    assert sent.status_code == 201
    assert sent.json()["author"]["is_bot"] is True
    assert Message.objects.get().author_id == bot["id"]


def test_a_bot_gets_no_token_for_a_password(anon, alices_bot, password):
    user = alices_bot.user
    user.set_password(password)
    user.save()
    response = anon.post(
        "/api/auth/token/", {"username": user.username, "password": password}, format="json"
    )
    assert response.status_code == 400
    assert not AccessToken.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "username": "bad name"}, "username"),
        ({"name": "ok", "username": "alice"}, "username"),
    ],
)
def test_bad_bot_input_is_400_about_the_field(as_alice, alice, payload, field):
    response = as_alice.post("/api/bots/", payload, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["fields"]


def test_too_many_bots_and_too_fast(as_alice, settings):
    settings.PARLEY_BOTS_PER_USER_MAX = 1
    assert as_alice.post("/api/bots/", {"name": "a"}, format="json").status_code == 201
    assert as_alice.post("/api/bots/", {"name": "b"}, format="json").status_code == 400
    settings.PARLEY_BOTS_PER_USER_MAX = 100
    settings.PARLEY_BOT_CREATE_RATE = (1, 3600)
    limited = as_alice.post("/api/bots/", {"name": "c"}, format="json")
    assert limited.status_code == 429 and "Retry-After" in limited


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "/api/bots/{bot}/", None),
        ("patch", "/api/bots/{bot}/", {"name": "Mine"}),
        ("delete", "/api/bots/{bot}/", None),
        ("get", "/api/bots/{bot}/tokens/", None),
        ("post", "/api/bots/{bot}/tokens/", {"name": "mine"}),
        ("delete", "/api/bots/{bot}/tokens/{token}/", None),
    ],
)
def test_someone_elses_bot_is_404_like_a_missing_one(as_carol, alices_bot, method, path, payload):
    token, _secret = bots.bot_token_create(
        user=alices_bot.bot_owner, bot_id=alices_bot.user_id, name="t"
    )
    url = path.format(bot=alices_bot.user_id, token=token.pk)
    missing = path.format(bot=alices_bot.user_id + 1000, token=token.pk)
    call = getattr(as_carol, method)
    hidden = call(url, payload, format="json") if payload else call(url)
    absent = call(missing, payload, format="json") if payload else call(missing)

    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == absent.json()
    assert AccessToken.objects.filter(pk=token.pk).exists()
    assert (
        bots.bot_get_for_user(user=alices_bot.bot_owner, bot_id=alices_bot.user_id).name == "Deploy"
    )


# --- webhooks ---------------------------------------------------------------------------------


def test_an_owner_makes_lists_and_revokes_webhooks(as_alice, anon, group):
    made = as_alice.post(f"/api/rooms/{group.pk}/webhooks/", {"name": "Alerts"}, format="json")
    assert made.status_code == 201
    body = made.json()
    assert body["url"].endswith(f"/hooks/{body['secret']}/")
    assert body["bot"]["is_bot"] is True and body["bot"]["name"] == "Alerts"
    assert Webhook.objects.get().key_hash == hashlib.sha256(body["secret"].encode()).hexdigest()

    listed = as_alice.get(f"/api/rooms/{group.pk}/webhooks/")
    assert [w["id"] for w in listed.json()["results"]] == [body["id"]]
    assert body["secret"] not in listed.content.decode()

    posted = anon.post(f"/hooks/{body['secret']}/", {"text": "disk full"}, format="json")
    assert posted.status_code == 200 and posted.json()["ok"] is True
    assert Message.objects.get().room == group

    assert as_alice.delete(f"/api/rooms/{group.pk}/webhooks/{body['id']}/").status_code == 204
    assert anon.post(f"/hooks/{body['secret']}/", {"text": "x"}, format="json").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "/api/rooms/{room}/webhooks/", None),
        ("post", "/api/rooms/{room}/webhooks/", {"name": "mine"}),
        ("delete", "/api/rooms/{room}/webhooks/{hook}/", None),
    ],
)
@pytest.mark.parametrize("who", ["member", "outsider"])
def test_webhook_routes_are_404_for_anyone_but_an_owner(
    token_client, bob, carol, group, alice, method, path, payload, who
):
    from apps.chat import webhooks

    webhook, _secret = webhooks.webhook_create(room=group, user=alice, name="Alerts")
    client = token_client(bob if who == "member" else carol)
    url = path.format(room=group.pk, hook=webhook.pk)
    call = getattr(client, method)
    response = call(url, payload, format="json") if payload else call(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert Webhook.objects.count() == 1


def test_a_webhook_of_another_room_is_404(as_alice, alice, group, public_room):
    from apps.chat import webhooks

    webhook, _secret = webhooks.webhook_create(room=group, user=alice, name="Alerts")
    response = as_alice.delete(f"/api/rooms/{public_room.pk}/webhooks/{webhook.pk}/")
    assert response.status_code == 404
    assert Webhook.objects.count() == 1


def test_bad_webhook_names_are_400(as_alice, public_room):
    for payload in ({}, {"name": ""}, {"name": "x" * 65}, {"name": 3}):
        response = as_alice.post(f"/api/rooms/{public_room.pk}/webhooks/", payload, format="json")
        assert response.status_code == 400 and "name" in error_of(response)["fields"]
    assert Webhook.objects.count() == 0
