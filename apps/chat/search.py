"""Message search: what is matched, and (issue 12) the query language and the selector.

``fold`` is the one normalisation both sides of a match go through: the stored
``Message.search_text`` and every term of a query. Case-insensitive for every script (Unicode
case folding, not SQLite's ASCII-only ``LIKE``), compatibility forms unified (NFKC: a
decomposed "й" is the composed one, a full-width "Ａ" is "a"), and "ё" is "е", as Russian
readers treat them. A match is then a plain substring test, the same on PostgreSQL (served by
a trigram index) and SQLite."""

import unicodedata

__all__ = ["fold", "search_text_for"]


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")


def search_text_for(body: str, file_names=()) -> str:
    """``Message.search_text``: the folded body, then the folded file names, one per line."""
    parts = [body, *file_names]
    return fold("\n".join(part for part in parts if part))
