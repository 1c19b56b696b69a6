import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.chat.models import Room

from .imaging import SVG, encode, png_header_only, two_tone, upload

LIST_URL = "/profiles/"
EDIT_URL = "/profiles/me/edit/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_urls_are_named_as_the_nav_expects():
    assert reverse("profiles:list") == LIST_URL
    assert reverse("profiles:edit") == EDIT_URL


# --- /profiles/ ------------------------------------------------------------------------------


def test_profile_list_redirects_anonymous_visitors_to_login(client):
    response = client.get(LIST_URL)
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_profile_list_shows_every_active_user_with_avatar_name_and_username(
    alice_client, bob, carol, make_user
):
    make_user("ghost", display_name="Ghost", is_active=False)
    html = alice_client.get(LIST_URL).content.decode()
    for name, username in [("Alice", "alice"), ("Bob", "bob"), ("Carol", "carol")]:
        assert f'data-username="{username}"' in html
        assert name in html
        assert f"@{username}" in html
    assert "ghost" not in html.lower()
    assert html.count('data-testid="profile-card"') == 3


def test_profile_list_offers_message_to_everyone_but_yourself(alice_client, alice, bob, carol):
    html = alice_client.get(LIST_URL).content.decode()
    assert html.count('data-testid="message-button"') == 2
    assert f'action="{reverse("chat:dm_open", args=[bob.pk])}"' in html
    assert f'action="{reverse("chat:dm_open", args=[carol.pk])}"' in html
    assert f'action="{reverse("chat:dm_open", args=[alice.pk])}"' not in html
    assert "csrfmiddlewaretoken" in html


def test_profile_list_message_button_opens_the_private_room(alice_client, bob):
    response = alice_client.post(reverse("chat:dm_open", args=[bob.pk]))
    room = Room.objects.get(is_private=True)
    assert response.status_code == 302
    assert response.url == f"/chat/room/{room.pk}/"


def test_profile_list_orders_by_shown_name_ignoring_case(alice_client, make_user):
    make_user("zed", display_name="aaron")  # display name wins over the username
    make_user("Mike")  # no display name: the username is the name
    make_user("bert", display_name="Bertha")
    html = alice_client.get(LIST_URL).content.decode()
    order = ["aaron", "Alice", "Bertha", "Mike"]
    positions = [html.index(f">{name}</p>") for name in order]
    assert positions == sorted(positions)


def test_profile_list_costs_the_same_queries_for_3_or_13_users(alice_client, make_user):
    """Users and profiles come in one query, not one per card (no N+1)."""

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert alice_client.get(LIST_URL).status_code == 200
        return len(ctx.captured_queries)

    make_user(), make_user()
    small = count_queries()
    for _ in range(10):
        make_user()
    assert count_queries() == small


def test_profile_list_escapes_display_names(alice_client, make_user):
    make_user("mallory", display_name="<script>alert(1)</script>")
    html = alice_client.get(LIST_URL).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_profile_list_paginates_with_bad_page_numbers_tolerated(alice_client):
    assert alice_client.get(LIST_URL, {"page": "nope"}).status_code == 200
    assert alice_client.get(LIST_URL, {"page": "999"}).status_code == 200


# --- /profiles/me/edit/ ----------------------------------------------------------------------


def test_profile_edit_redirects_anonymous_visitors_to_login(client):
    response = client.get(EDIT_URL)
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_profile_edit_get_renders_the_page_with_the_htmx_form(alice_client):
    response = alice_client.get(EDIT_URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html
    assert 'id="profile-form"' in html
    assert f'hx-post="{EDIT_URL}"' in html
    assert 'hx-encoding="multipart/form-data"' in html
    assert 'enctype="multipart/form-data"' in html
    assert 'value="Alice"' in html
    assert 'id="nav-user"' in html
    assert "hx-swap-oob" not in html


def test_profile_edit_htmx_post_returns_the_form_fragment_with_a_notice(alice_client, alice):
    response = alice_client.post(EDIT_URL, {"display_name": "  Alice L.  "}, **HTMX)
    html = response.content.decode()

    assert response.status_code == 200
    assert "<html" not in html and "<body" not in html
    assert html.lstrip().startswith('<form id="profile-form"')
    assert 'data-testid="profile-saved"' in html
    assert 'value="Alice L."' in html
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "Alice L."


def test_profile_edit_htmx_success_updates_the_nav_out_of_band(alice_client):
    html = alice_client.post(EDIT_URL, {"display_name": "Queen A"}, **HTMX).content.decode()
    oob = html[html.index('<span id="nav-user"') :]
    assert 'hx-swap-oob="true"' in oob.split(">", 1)[0]
    assert "Queen A" in oob


def test_profile_edit_htmx_post_with_avatar_shows_the_new_avatar(alice_client, alice):
    avatar = upload(encode(two_tone(), "JPEG"), "me.jpg", "image/jpeg")
    html = alice_client.post(EDIT_URL, {"display_name": "Alice", "avatar": avatar}, **HTMX)
    html = html.content.decode()
    alice.profile.refresh_from_db()
    assert alice.profile.avatar.name.startswith("avatars/")
    assert f'src="{alice.profile.avatar.url}"' in html
    assert "Remove my avatar" in html


def test_profile_edit_htmx_errors_come_back_inline_with_200(alice_client, alice):
    response = alice_client.post(EDIT_URL, {"display_name": "x" * 41}, **HTMX)
    html = response.content.decode()

    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="display-name-error"' in html
    assert "at most 40 characters" in html
    assert 'aria-invalid="true"' in html
    assert 'data-testid="profile-saved"' not in html
    assert "hx-swap-oob" not in html
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "Alice"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (SVG, "JPEG, PNG, WebP or GIF"),
        (png_header_only(50000, 50000), "4096"),
        (b"\0" * (6 * 1024 * 1024), "5 MB"),
    ],
    ids=["svg", "50000-square-header", "6-mb"],
)
def test_profile_edit_bad_avatar_is_an_inline_error_not_a_500(
    alice_client, alice, content, message
):
    avatar = upload(content, "avatar.png")
    response = alice_client.post(EDIT_URL, {"display_name": "Al", "avatar": avatar}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="avatar-error"' in html
    assert message in html
    alice.profile.refresh_from_db()
    assert not alice.profile.avatar
    assert alice.profile.display_name == "Alice"


def test_profile_edit_plain_post_redirects_after_saving(alice_client, alice):
    response = alice_client.post(EDIT_URL, {"display_name": "Plain Alice"})
    assert response.status_code == 302
    assert response.url == EDIT_URL
    page = alice_client.get(response.url).content.decode()
    assert "Your profile was saved." in page
    assert "Plain Alice" in page


def test_profile_edit_plain_post_with_errors_is_a_400_page(alice_client):
    response = alice_client.post(EDIT_URL, {"display_name": "y" * 60})
    html = response.content.decode()
    assert response.status_code == 400
    assert "<html" in html
    assert "at most 40 characters" in html


def test_profile_edit_remove_avatar(
    alice_client, alice, settings, django_capture_on_commit_callbacks
):
    alice_client.post(
        EDIT_URL, {"display_name": "Alice", "avatar": upload(encode(two_tone(), "PNG"))}
    )
    alice.profile.refresh_from_db()
    path = settings.MEDIA_ROOT / alice.profile.avatar.name
    assert path.exists()

    with django_capture_on_commit_callbacks(execute=True):
        html = alice_client.post(
            EDIT_URL, {"display_name": "Alice", "remove_avatar": "on"}, **HTMX
        ).content.decode()

    alice.profile.refresh_from_db()
    assert not alice.profile.avatar
    assert not path.exists()
    assert "Remove my avatar" not in html  # nothing left to remove
    assert ">A</span>" in html  # the initials avatar is back


def test_profile_edit_enforces_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(EDIT_URL, {"display_name": "Forged"}, **HTMX)
    assert response.status_code == 403
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "Alice"


def test_profile_edit_escapes_the_display_name(alice_client):
    html = alice_client.post(
        EDIT_URL, {"display_name": "<img src=x onerror=alert(1)>"}, **HTMX
    ).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_the_editor_saves_the_privacy_settings(client, alice):
    from apps.profiles.models import Profile

    client.force_login(alice)
    page = client.get(reverse("profiles:edit")).content.decode()
    assert 'data-testid="show-presence"' in page and 'data-testid="send-read-receipts"' in page
    response = client.post(
        reverse("profiles:edit"), {"display_name": "Alice", "show_presence": "on"}
    )
    assert response.status_code == 302
    profile = Profile.objects.get(user=alice)
    assert (profile.show_presence, profile.send_read_receipts) == (True, False)
