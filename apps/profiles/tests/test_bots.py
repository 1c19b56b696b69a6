"""Bot accounts (issue 13): made, changed and deleted by their owner only, marked BOT, and
never signed in with a password."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.accounts import tokens
from apps.accounts.models import AccessToken
from apps.chat import services
from apps.core.ratelimit import RateLimited
from apps.profiles import bots
from apps.profiles.models import Profile

User = get_user_model()


@pytest.fixture
def deploy_bot(alice):
    return bots.bot_create(owner=alice, name="Deploy")


def test_a_bot_gets_a_name_bot_username_an_unusable_password_and_no_email(alice, deploy_bot):
    user = deploy_bot.user
    assert user.username == "deploy-bot"
    assert deploy_bot.is_bot and deploy_bot.bot_owner == alice
    assert deploy_bot.name == "Deploy"
    assert not user.has_usable_password()
    assert user.email == ""


def test_usernames_are_made_unique_and_a_chosen_one_is_checked(alice, deploy_bot):
    second = bots.bot_create(owner=alice, name="Deploy")
    chosen = bots.bot_create(owner=alice, name="CI", username="ci.runner")

    assert second.user.username == "deploy-bot-2"
    assert chosen.user.username == "ci.runner"
    with pytest.raises(ValidationError) as taken:
        bots.bot_create(owner=alice, name="Other", username="ALICE")
    assert taken.value.code == "username"
    with pytest.raises(ValidationError):
        bots.bot_create(owner=alice, name="Other", username="has space")


def test_bad_names_are_refused(alice):
    for name in ["", "   ", "x" * 41, "evil\u202ename", 42]:
        with pytest.raises(ValidationError):
            bots.bot_create(owner=alice, name=name)
    assert not Profile.objects.filter(is_bot=True).exists()


def test_at_most_n_bots_per_user_and_creation_is_rate_limited(alice, settings):
    settings.PARLEY_BOTS_PER_USER_MAX = 2
    bots.bot_create(owner=alice, name="One")
    bots.bot_create(owner=alice, name="Two")
    with pytest.raises(ValidationError) as too_many:
        bots.bot_create(owner=alice, name="Three")
    assert too_many.value.code == "too_many"

    settings.PARLEY_BOTS_PER_USER_MAX = 100
    settings.PARLEY_BOT_CREATE_RATE = (3, 3600)
    bots.bot_create(owner=alice, name="Three")
    with pytest.raises(RateLimited):
        bots.bot_create(owner=alice, name="Four")


def test_a_bot_cannot_own_bots(deploy_bot):
    with pytest.raises(ValidationError):
        bots.bot_create(owner=deploy_bot.user, name="Child")


def test_only_the_owner_sees_changes_and_deletes_a_bot(alice, bob, deploy_bot):
    bot_id = deploy_bot.user_id
    for call in (
        lambda: bots.bot_get_for_user(user=bob, bot_id=bot_id),
        lambda: bots.bot_update(user=bob, bot_id=bot_id, name="Mine now"),
        lambda: bots.bot_delete(user=bob, bot_id=bot_id),
        lambda: bots.bot_token_create(user=bob, bot_id=bot_id, name="t"),
    ):
        with pytest.raises(bots.BotNotFound):
            call()
    assert list(bots.bot_list_for_user(user=bob)) == []

    bots.bot_update(user=alice, bot_id=bot_id, name="Deployer")
    assert Profile.objects.get(user_id=bot_id).name == "Deployer"
    bots.bot_delete(user=alice, bot_id=bot_id)
    assert not User.objects.filter(pk=bot_id).exists()


def test_a_bot_token_authenticates_as_the_bot_and_revoking_stops_it(alice, deploy_bot):
    token, secret = bots.bot_token_create(user=alice, bot_id=deploy_bot.user_id, name="CI")

    assert tokens.token_authenticate(secret) == deploy_bot.user
    assert AccessToken.objects.get(pk=token.pk).key_hash == tokens.hash_secret(secret)
    bots.bot_token_revoke(user=alice, bot_id=deploy_bot.user_id, token_id=token.pk)
    assert tokens.token_authenticate(secret) is None


def test_deleting_the_owner_deletes_their_bots(alice, deploy_bot):
    bot_id = deploy_bot.user_id
    alice.delete()
    assert not User.objects.filter(pk=bot_id).exists()


# --- password sign-in ---------------------------------------------------------------------


def test_a_bot_cannot_log_in_with_a_password_even_one_set_by_hand(client, deploy_bot, password):
    user = deploy_bot.user
    user.set_password(password)  # the admin, a shell: still no session
    user.save()

    response = client.post(reverse("account_login"), {"login": user.username, "password": password})

    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in client.session
    assert response.context["form"].errors


def test_a_person_still_logs_in(client, alice, password):
    response = client.post(reverse("account_login"), {"login": "alice", "password": password})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_no_password_reset_mail_reaches_a_bot_even_with_an_address(
    client, deploy_bot, alice, mailoutbox
):
    User.objects.filter(pk=deploy_bot.user_id).update(email="bot@example.com")
    User.objects.filter(pk=alice.pk).update(email="alice@example.com")

    client.post(reverse("account_reset_password"), {"email": "bot@example.com"})
    # allauth answers an unknown address with an "no account here" mail: no reset link.
    assert not any("/password/reset/key/" in mail.body for mail in mailoutbox)
    client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    assert any("/password/reset/key/" in mail.body for mail in mailoutbox)  # a person's


# --- pages ------------------------------------------------------------------------------------


def test_bots_page_lists_creates_and_is_in_the_menu(alice_client, alice):
    page = alice_client.get(reverse("profiles:bots"))
    assert page.status_code == 200
    assert reverse("profiles:bots").encode() in page.content  # the dropdown link

    response = alice_client.post(reverse("profiles:bots"), {"name": "Greeter", "username": ""})
    profile = Profile.objects.get(is_bot=True)
    assert response.status_code == 302
    assert response["Location"] == reverse("profiles:bot_detail", args=[profile.user_id])
    listed = alice_client.get(reverse("profiles:bots")).content.decode()
    assert "greeter-bot" in listed and 'data-testid="bot-badge"' in listed


def test_bots_page_shows_form_errors_as_400(alice_client):
    response = alice_client.post(reverse("profiles:bots"), {"name": ""})
    assert response.status_code == 400
    assert response.context["form"].errors["name"]


def test_bot_page_makes_a_token_shown_once_and_revokes_it(alice_client, alice, deploy_bot):
    url = reverse("profiles:bot_token_create", args=[deploy_bot.user_id])
    response = alice_client.post(url, {"name": "CI", "expiry": "never"})
    secret = response.context["secret"]
    assert response.status_code == 200
    assert secret.encode() in response.content
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    token = AccessToken.objects.get(user=deploy_bot.user)
    again = alice_client.get(reverse("profiles:bot_detail", args=[deploy_bot.user_id]))
    assert secret.encode() not in again.content and token.prefix.encode() in again.content

    revoke = reverse("profiles:bot_token_revoke", args=[deploy_bot.user_id, token.pk])
    assert alice_client.post(revoke).status_code == 302
    assert not AccessToken.objects.filter(pk=token.pk).exists()


def test_bot_page_edits_and_deletes(alice_client, deploy_bot):
    url = reverse("profiles:bot_detail", args=[deploy_bot.user_id])
    assert alice_client.post(url, {"name": "Shipper"}).status_code == 302
    assert Profile.objects.get(pk=deploy_bot.pk).display_name == "Shipper"
    assert alice_client.post(url, {"name": ""}).status_code == 400

    delete = reverse("profiles:bot_delete", args=[deploy_bot.user_id])
    assert alice_client.get(delete).status_code == 200
    assert alice_client.post(delete).status_code == 302
    assert not User.objects.filter(pk=deploy_bot.user_id).exists()


def test_someone_elses_bot_pages_are_404(client, bob, deploy_bot):
    client.force_login(bob)
    bot_id = deploy_bot.user_id
    for method, url in [
        ("get", reverse("profiles:bot_detail", args=[bot_id])),
        ("post", reverse("profiles:bot_detail", args=[bot_id])),
        ("post", reverse("profiles:bot_token_create", args=[bot_id])),
        ("post", reverse("profiles:bot_token_revoke", args=[bot_id, 1])),
        ("get", reverse("profiles:bot_delete", args=[bot_id])),
        ("post", reverse("profiles:bot_delete", args=[bot_id])),
    ]:
        assert getattr(client, method)(url, {"name": "x"}).status_code == 404
    assert User.objects.filter(pk=bot_id).exists()


def test_the_bots_pages_need_csrf(alice):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    assert csrf_client.post(reverse("profiles:bots"), {"name": "X"}).status_code == 403


def test_bot_badge_on_messages_users_page_and_member_list(
    alice_client, alice, public_room, deploy_bot
):
    services.message_send(room=public_room, author=deploy_bot.user, body="built")
    services.message_send(room=public_room, author=alice, body="thanks")

    room = alice_client.get(public_room.get_absolute_url()).content.decode()
    assert room.count('data-testid="bot-badge"') == 1
    bot_article = room[room.index(f'data-author="{deploy_bot.user_id}"') :]
    assert bot_article.index('data-testid="bot-badge"') < bot_article.index("built")
    users = alice_client.get(reverse("profiles:list")).content.decode()
    assert users.count('data-testid="bot-badge"') == 1
    settings_page = alice_client.get(reverse("chat:room_settings", args=[public_room.pk]))
    assert settings_page.content.decode().count('data-testid="bot-badge"') == 1
