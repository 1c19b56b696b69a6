"""/api/profiles/: the people list, one person, and your own profile (profile_update)."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from apps.api.testing import error_of
from apps.profiles.models import Profile


def _png(size=(64, 48), color=(200, 30, 30)) -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return SimpleUploadedFile("me.png", out.getvalue(), content_type="image/png")


def test_profile_list_shows_every_active_user_with_user_id_as_id(as_carol, alice, bob, make_user):
    make_user("ghost", is_active=False)

    results = as_carol.get("/api/profiles/").json()["results"]

    assert [p["username"] for p in results] == ["alice", "bob", "carol"]
    assert results[0] == {
        "id": alice.pk,
        "username": "alice",
        "display_name": "Alice",
        "name": "Alice",
        "avatar": None,
        "is_bot": False,
        "presence": "offline",
    }


def test_profile_without_display_name_shows_the_username_as_name(as_alice, make_user):
    plain = make_user("plain")

    body = as_alice.get(f"/api/profiles/{plain.pk}/").json()

    assert (body["display_name"], body["name"]) == ("", "plain")


@pytest.mark.parametrize("pk", ["missing", "inactive"])
def test_unknown_or_inactive_profile_is_404_json(as_alice, make_user, pk):
    ghost = make_user("ghost", is_active=False)
    user_id = ghost.pk if pk == "inactive" else ghost.pk + 100

    response = as_alice.get(f"/api/profiles/{user_id}/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_me_is_your_own_profile(as_alice, alice):
    assert as_alice.get("/api/profiles/me/").json()["id"] == alice.pk


def test_patch_display_name_changes_only_the_display_name(as_alice, alice):
    response = as_alice.patch("/api/profiles/me/", {"display_name": "  Alice B.  "}, format="json")

    assert response.status_code == 200
    assert response.json()["display_name"] == "Alice B."
    assert Profile.objects.get(user=alice).display_name == "Alice B."


def test_empty_display_name_falls_back_to_the_username(as_alice, alice):
    response = as_alice.patch("/api/profiles/me/", {"display_name": ""}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "alice"


def test_avatar_upload_stores_a_thumbnail_and_returns_its_absolute_url(as_alice, alice):
    response = as_alice.patch("/api/profiles/me/", {"avatar": _png()}, format="multipart")

    assert response.status_code == 200
    avatar = response.json()["avatar"]
    assert avatar.startswith("http://testserver/media/avatars/")
    assert avatar.endswith(".webp")
    profile = Profile.objects.get(user=alice)
    assert profile.display_name == "Alice"  # left alone
    with Image.open(profile.avatar.path) as stored:
        assert stored.size[0] == stored.size[1]


def test_avatar_shows_on_messages_too(as_alice, alice, public_room, send):
    as_alice.patch("/api/profiles/me/", {"avatar": _png()}, format="multipart")
    send(public_room, alice, "look at me")

    [message] = as_alice.get(f"/api/rooms/{public_room.pk}/messages/").json()["results"]

    assert message["author"]["avatar"].endswith(".webp")


def test_remove_avatar_clears_it(as_alice, alice):
    as_alice.patch("/api/profiles/me/", {"avatar": _png()}, format="multipart")

    response = as_alice.patch("/api/profiles/me/", {"remove_avatar": True}, format="json")

    assert response.status_code == 200
    assert response.json()["avatar"] is None
    assert not Profile.objects.get(user=alice).avatar


def test_display_name_and_avatar_together_in_one_multipart_patch(as_alice):
    response = as_alice.patch(
        "/api/profiles/me/", {"display_name": "Al", "avatar": _png()}, format="multipart"
    )

    assert response.status_code == 200
    assert response.json()["display_name"] == "Al"
    assert response.json()["avatar"]


@pytest.mark.parametrize(
    ("payload", "fmt", "field"),
    [
        ({"display_name": "x" * 41}, "json", "display_name"),
        ({"display_name": 42}, "json", "display_name"),
        ({"display_name": "line\nbreak"}, "json", "display_name"),
        ({"avatar": "not a file"}, "json", "avatar"),
        ({"avatar": SimpleUploadedFile("a.png", b"not an image")}, "multipart", "avatar"),
        ({"avatar": SimpleUploadedFile("a.png", b"")}, "multipart", "avatar"),
        ({"remove_avatar": "perhaps"}, "json", "remove_avatar"),
    ],
)
def test_invalid_profile_update_gives_400_on_the_field_and_changes_nothing(
    as_alice, alice, payload, fmt, field
):
    response = as_alice.patch("/api/profiles/me/", payload, format=fmt)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert field in error_of(response)["fields"]
    profile = Profile.objects.get(user=alice)
    assert (profile.display_name, bool(profile.avatar)) == ("Alice", False)


def test_a_bad_avatar_also_stops_a_valid_display_name_change(as_alice, alice):
    response = as_alice.patch(
        "/api/profiles/me/",
        {"display_name": "New", "avatar": SimpleUploadedFile("a.png", b"junk")},
        format="multipart",
    )

    assert response.status_code == 400
    assert Profile.objects.get(user=alice).display_name == "Alice"


@pytest.mark.parametrize("method", ["put", "delete", "post"])
def test_profiles_cannot_be_replaced_or_deleted(as_alice, alice, method):
    response = getattr(as_alice, method)("/api/profiles/me/", {"display_name": "x"}, format="json")

    assert response.status_code == 405


def test_you_cannot_edit_someone_elses_profile(as_alice, bob):
    response = as_alice.patch(f"/api/profiles/{bob.pk}/", {"display_name": "Hacked"}, format="json")

    assert response.status_code == 405
    assert Profile.objects.get(user=bob).display_name == "Bob"


# --- Privacy settings (issue 11) ----------------------------------------------------------------


def test_the_privacy_settings_are_on_by_default_and_only_in_ones_own_profile(as_alice, alice):
    assert as_alice.get("/api/profiles/me/").json()["show_presence"] is True
    assert as_alice.get("/api/profiles/me/").json()["send_read_receipts"] is True
    assert "show_presence" not in as_alice.get(f"/api/profiles/{alice.pk}/").json()


def test_patch_changes_the_privacy_settings_and_nothing_else(as_alice, alice):
    response = as_alice.patch(
        "/api/profiles/me/", {"show_presence": False, "send_read_receipts": False}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["show_presence"], response.json()["send_read_receipts"]) == (
        False,
        False,
    )
    profile = Profile.objects.get(user=alice)
    assert (profile.show_presence, profile.send_read_receipts, profile.display_name) == (
        False,
        False,
        "Alice",
    )


def test_a_privacy_setting_that_is_not_a_boolean_is_a_400_naming_it(as_alice, alice):
    response = as_alice.patch("/api/profiles/me/", {"show_presence": "perhaps"}, format="json")

    assert response.status_code == 400
    assert "show_presence" in str(response.json())
    assert Profile.objects.get(user=alice).show_presence is True


def test_me_shows_the_language_and_patch_changes_it_through_the_profile_service(
    as_alice, alice, alice_client
):
    assert as_alice.get("/api/profiles/me/").json()["language"] == ""

    response = as_alice.patch("/api/profiles/me/", {"language": "ru"}, format="json")

    assert response.status_code == 200
    assert response.json()["language"] == "ru"
    assert Profile.objects.get(user=alice).language == "ru"
    # The pages follow the saved choice.
    assert ">Общий чат</a>" in alice_client.get("/").content.decode()

    response = as_alice.patch("/api/profiles/me/", {"language": ""}, format="json")
    assert response.status_code == 200
    assert Profile.objects.get(user=alice).language == ""


@pytest.mark.parametrize("language", ["de", "RU", "ru-xx", 7, None])
def test_an_unknown_language_is_a_400_on_the_field_and_changes_nothing(as_alice, alice, language):
    response = as_alice.patch(
        "/api/profiles/me/", {"language": language, "display_name": "New"}, format="json"
    )

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["language"]
    profile = Profile.objects.get(user=alice)
    assert (profile.language, profile.display_name) == ("", "Alice")


@pytest.mark.parametrize(
    ("saved", "accept", "message"),
    [
        ("ru", "", "Такой комнаты нет."),
        ("", "ru", "Такой комнаты нет."),
        ("en", "ru", "No such room."),
        ("", "", "No such room."),
    ],
)
def test_a_token_clients_errors_come_in_the_saved_language_else_accept_language(
    token_client, alice, saved, accept, message
):
    Profile.objects.filter(user=alice).update(language=saved)
    client = token_client(alice)
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}

    response = client.get("/api/rooms/999999/", **headers)

    assert response.status_code == 404
    assert error_of(response)["message"] == message
