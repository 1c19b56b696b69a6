"""The interface language (issue 14): the profile's saved choice, else Accept-Language, else
English; the switch (set_language) saves a signed-in user's choice; Russian plural forms."""

import pytest
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.test import Client
from django.utils import translation

from apps.profiles import services
from apps.profiles.models import Profile

SWITCH_URL = "/i18n/setlang/"


def _set_language(user, language):
    Profile.objects.filter(user=user).update(language=language)


def test_a_signed_in_user_who_chose_russian_gets_russian_pages(alice, alice_client):
    _set_language(alice, "ru")

    response = alice_client.get("/")
    html = response.content.decode()

    assert response["Content-Language"] == "ru"
    assert '<html lang="ru"' in html
    # The nav and the user menu read as in the original Russian project.
    assert ">Общий чат</a>" in html
    assert ">Пользователи</a>" in html
    assert ">Редактировать</a>" in html
    assert "General chat" not in html


def test_the_saved_choice_beats_the_browsers_accept_language(alice, alice_client):
    _set_language(alice, "en")

    html = alice_client.get("/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()

    assert '<html lang="en"' in html
    assert ">General chat</a>" in html


def test_without_a_saved_choice_a_signed_in_user_follows_accept_language(alice_client):
    assert ">Общий чат</a>" in alice_client.get("/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert ">General chat</a>" in alice_client.get("/").content.decode()


@pytest.mark.django_db
def test_an_anonymous_visitor_gets_the_language_of_accept_language_else_english(client):
    russian = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9,en;q=0.5")
    english = Client().get("/accounts/login/")
    unknown = Client().get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="de")

    assert russian["Content-Language"] == "ru"
    assert '<html lang="ru"' in russian.content.decode()
    assert ">Регистрация</a>" in russian.content.decode()
    for response in (english, unknown):
        assert response["Content-Language"] == "en"
        assert ">Sign up</a>" in response.content.decode()


@pytest.mark.django_db
def test_the_login_page_has_the_language_switch(client):
    html = client.get("/accounts/login/").content.decode()

    assert 'data-testid="language-switch"' in html
    assert f'action="{SWITCH_URL}"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'value="ru" lang="ru"' in html and ">Русский</button>" in html
    assert ">English</button>" in html


def test_the_user_menu_has_the_language_switch(alice_client):
    html = alice_client.get("/").content.decode()

    assert 'role="menuitemradio" aria-checked="true"' in html  # English, the current one
    assert ">Русский</button>" in html


def test_the_switch_saves_a_signed_in_users_choice_and_redirects_back(alice, alice_client):
    response = alice_client.post(SWITCH_URL, {"language": "ru", "next": "/profiles/"})

    assert response.status_code == 302
    assert response.url == "/profiles/"
    assert Profile.objects.get(user=alice).language == "ru"
    # Another browser of the same user (no cookie) gets Russian too: the profile decides.
    other = Client()
    other.force_login(alice)
    assert ">Пользователи</a>" in other.get("/profiles/").content.decode()

    alice_client.post(SWITCH_URL, {"language": "en", "next": "/"})
    assert Profile.objects.get(user=alice).language == "en"


@pytest.mark.django_db
def test_the_switch_sets_the_cookie_for_an_anonymous_visitor(client):
    response = client.post(SWITCH_URL, {"language": "ru", "next": "/accounts/login/"})

    assert response.status_code == 302
    assert response.cookies["django_language"].value == "ru"
    assert '<html lang="ru"' in client.get("/accounts/login/").content.decode()


def test_the_switch_refuses_an_unknown_language_and_changes_nothing(alice, alice_client):
    alice_client.post(SWITCH_URL, {"language": "xx", "next": "/"})

    assert Profile.objects.get(user=alice).language == ""


def test_the_switch_needs_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.post(SWITCH_URL, {"language": "ru"}).status_code == 403
    assert Profile.objects.get(user=alice).language == ""


def test_the_profile_service_accepts_a_known_language_or_empty_and_refuses_others(alice):
    profile = alice.profile
    services.profile_update(profile=profile, language="ru")
    assert Profile.objects.get(user=alice).language == "ru"
    services.profile_update(profile=profile, language="")
    assert Profile.objects.get(user=alice).language == ""

    with pytest.raises(ValidationError) as caught:
        services.profile_update(profile=profile, language="de", display_name="Changed")
    assert list(caught.value.message_dict) == ["language"]
    assert Profile.objects.get(user=alice).display_name == "Alice"  # nothing written


@pytest.mark.parametrize(
    ("n", "members"),
    [
        (1, "1 участник"),
        (2, "2 участника"),
        (5, "5 участников"),
        (11, "11 участников"),
        (21, "21 участник"),
        (22, "22 участника"),
        (112, "112 участников"),
    ],
)
def test_russian_plural_forms(n, members):
    # The room card's member count (chat/home.html), as blocktranslate count renders it.
    template = Template(
        "{% load i18n %}{% blocktranslate count counter=n %}{{ counter }} member"
        "{% plural %}{{ counter }} members{% endblocktranslate %}"
    )
    with translation.override("ru"):
        assert template.render(Context({"n": n})) == members
        assert (
            translation.ngettext("%(counter)s member", "%(counter)s members", n) % {"counter": n}
            == members
        )
    with translation.override("en"):
        assert template.render(Context({"n": n})) == (f"{n} member" if n == 1 else f"{n} members")


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_saved_choice_applies_too(alice, async_client):
    """The middleware's async path (daphne/uvicorn serve Parley through ASGIHandler)."""
    from asgiref.sync import sync_to_async

    await sync_to_async(_set_language)(alice, "ru")
    await async_client.aforce_login(alice)

    response = await async_client.get("/profiles/")

    assert response["Content-Language"] == "ru"
    assert ">Пользователи</a>" in response.content.decode()


EDIT_URL = "/profiles/me/edit/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_profile_editor_offers_the_languages_and_follow_the_browser(alice, alice_client):
    _set_language(alice, "ru")

    html = alice_client.get(EDIT_URL).content.decode()

    assert 'data-testid="profile-language"' in html
    assert '<option value="">Как в браузере</option>' in html
    assert '<option value="ru" lang="ru" selected>Русский</option>' in html
    assert '<option value="en" lang="en">English</option>' in html


def test_the_profile_editor_saves_the_language_and_reloads_the_page_in_it(alice, alice_client):
    response = alice_client.post(EDIT_URL, {"display_name": "Alice", "language": "ru"}, **HTMX)

    assert response.status_code == 200
    assert response["HX-Refresh"] == "true"
    assert Profile.objects.get(user=alice).language == "ru"
    html = alice_client.get(EDIT_URL).content.decode()
    assert "Ваш профиль сохранён." in html  # the notice, in the new language

    alice_client.post(EDIT_URL, {"display_name": "Alice", "language": ""})
    assert Profile.objects.get(user=alice).language == ""


def test_a_profile_post_without_the_language_leaves_it_alone(alice, alice_client):
    _set_language(alice, "ru")

    alice_client.post(EDIT_URL, {"display_name": "Alice B."}, **HTMX)

    profile = Profile.objects.get(user=alice)
    assert (profile.display_name, profile.language) == ("Alice B.", "ru")


def test_the_profile_editor_refuses_an_unknown_language_on_the_field(alice, alice_client):
    response = alice_client.post(EDIT_URL, {"display_name": "Alice", "language": "de"}, **HTMX)

    assert 'id="language-error"' in response.content.decode()
    assert Profile.objects.get(user=alice).language == ""
