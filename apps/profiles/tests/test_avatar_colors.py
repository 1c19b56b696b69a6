"""Initials avatars take their colour from a fixed set of CSS classes (the CSP forbids style=):
stable per user, spread over the set, every class defined, white initials readable on each."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from apps.profiles.models import AVATAR_COLOR_COUNT, Profile

APP_CSS = Path(settings.BASE_DIR) / "static" / "src" / "app.css"
RULE = re.compile(r"\.(avatar-hue-\d+)\s*\{\s*background-color:\s*#([0-9a-f]{6});\s*\}")


def defined_colors() -> dict[str, str]:
    return dict(RULE.findall(APP_CSS.read_text()))


def contrast_with_white(hex_color: str) -> float:
    """WCAG 2 contrast ratio of white text on this background."""

    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(hex_color[i : i + 2], 16)) for i in (0, 2, 4))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 1.05 / (luminance + 0.05)


def test_every_colour_class_is_defined_and_keeps_white_initials_at_aa_contrast():
    colors = defined_colors()
    assert sorted(colors) == sorted(f"avatar-hue-{i}" for i in range(AVATAR_COLOR_COUNT))
    assert len(set(colors.values())) == AVATAR_COLOR_COUNT  # sixteen different colours
    for name, color in colors.items():
        assert contrast_with_white(color) >= 4.5, f"{name} #{color}"


@pytest.mark.django_db
def test_a_users_colour_is_stable_and_users_spread_over_the_set(make_user):
    users = [make_user() for _ in range(60)]
    classes = [u.profile.avatar_color_class for u in users]
    assert set(classes) <= set(defined_colors())
    assert len(set(classes)) >= 12  # hashed ids, not a handful of colours
    # The same user gets the same colour from a fresh load (derived from the id alone).
    for user, cls in zip(users, classes, strict=True):
        assert Profile.objects.get(user=user).avatar_color_class == cls


@pytest.mark.django_db
def test_pages_render_the_colour_class_and_no_inline_style(alice_client, alice, bob):
    html = alice_client.get(reverse("profiles:list")).content.decode()
    for user in (alice, bob):
        card = re.search(rf'data-username="{user.username}".*?</li>', html, flags=re.DOTALL).group(
            0
        )
        assert user.profile.avatar_color_class in card
        assert "style=" not in card
