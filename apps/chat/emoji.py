"""The reactions people can pick: a dozen common ones first, then a few hundred more, shipped
with the app (names from the Unicode database, for the picker's search). A reaction must be one
of these exact strings: anything else is refused, so a reaction cannot carry arbitrary text."""

import unicodedata
from functools import cache

# Shown first in the picker, in this order.
COMMON = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀", "🔥", "✅", "👎", "🚀"]

# Code point ranges of single-code-point emoji with emoji presentation by default.
_RANGES = [
    (0x1F600, 0x1F64F),  # emoticons
    (0x1F910, 0x1F92F),  # more faces and hands
    (0x1F970, 0x1F97A),
    (0x1F440, 0x1F450),  # eyes, hands
    (0x1F466, 0x1F46D),  # people
    (0x1F493, 0x1F4AF),  # hearts, symbols
    (0x1F400, 0x1F43C),  # animals
    (0x1F330, 0x1F344),  # plants
    (0x1F345, 0x1F37F),  # food and drink
    (0x1F380, 0x1F393),  # celebration
    (0x1F3A0, 0x1F3CA),  # activities
    (0x1F4B0, 0x1F4DA),  # money, office
    (0x1F680, 0x1F6A4),  # transport
    (0x1F947, 0x1F94F),  # medals, sport
    (0x1F9D0, 0x1F9E6),
]
# Emoji from the older symbol blocks, which need the emoji variation selector (U+FE0F).
_SYMBOLS = [
    "☀️", "☁️", "☕", "☺️", "♻️", "⚠️", "⚡", "⚽", "⛔", "✨",
    "❌", "❓", "❗", "➕", "⭐", "❤️", "✌️", "✍️", "✔️", "✏️",
]  # fmt: skip


def _name(emoji: str) -> str:
    return unicodedata.name(emoji[0], "").lower()


@cache
def all_emoji() -> tuple[tuple[str, str], ...]:
    """Every pickable emoji with its name, the common ones first, each once."""
    seen: dict[str, str] = {}
    for emoji in COMMON:
        seen[emoji] = _name(emoji)
    for low, high in _RANGES:
        for code in range(low, high + 1):
            emoji = chr(code)
            name = _name(emoji)
            if name:  # an unassigned code point has no name
                seen.setdefault(emoji, name)
    for emoji in _SYMBOLS:
        seen.setdefault(emoji, _name(emoji))
    return tuple(seen.items())


@cache
def allowed() -> frozenset[str]:
    return frozenset(emoji for emoji, _name in all_emoji())


def is_allowed(emoji: object) -> bool:
    return isinstance(emoji, str) and emoji in allowed()
