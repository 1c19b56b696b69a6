"""Message search: what is matched, and (issue 12) the query language and the selector.

``fold`` is the one normalisation both sides of a match go through: the stored
``Message.search_text`` and every term of a query. Case-insensitive for every script (Unicode
case folding, not SQLite's ASCII-only ``LIKE``), compatibility forms unified (NFKC: a
decomposed "й" is the composed one, a full-width "Ａ" is "a"), and "ё" is "е", as Russian
readers treat them. A match is then a plain substring test, the same on PostgreSQL (served by
a trigram index) and SQLite."""

import html
import re
import unicodedata
from dataclasses import dataclass, field

import nh3
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext as _

from apps.core import ratelimit, text
from apps.core.ratelimit import RateLimited

__all__ = [
    "Query",
    "SearchPage",
    "SearchResult",
    "Snippet",
    "fold",
    "parse",
    "search_messages",
    "search_text_for",
    "snippet_for",
]


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")


def search_text_for(body: str, file_names=()) -> str:
    """``Message.search_text``: the folded body, then the folded file names, one per line."""
    parts = [body, *file_names]
    return fold("\n".join(part for part in parts if part))


# --- The query language (issue 12) ------------------------------------------------------------
QUERY_MAX_CHARS = 200
QUERY_MAX_TERMS = 10  # words, phrases and filters together
SNIPPET_CHARS = 200
SNIPPET_BEFORE = 60  # characters kept before the first match

# A token: an optional filter key, then a "quoted phrase" (an unclosed quote runs to the end)
# or a run of non-space characters.
_TOKEN = re.compile(r'(?:(?P<key>[A-Za-z]+):)?(?:"(?P<phrase>[^"]*)"?|(?P<word>\S+))')
FILTERS = ("from", "in", "has")
HAS_VALUES = ("file",)


@dataclass(frozen=True)
class Query:
    """A parsed query. ``terms`` are folded substrings that must all occur (words and phrases
    alike); ``raw_terms`` the same as typed (for highlighting the original text)."""

    terms: tuple[str, ...] = ()
    raw_terms: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()  # from:username (any of them)
    rooms: tuple[str, ...] = ()  # in:room-name (any of them)
    has_file: bool = False


def _invalid(message, code: str = "q") -> ValidationError:
    return ValidationError(message, code=code)


def parse(q: object) -> Query:
    """``q`` as a Query; ValidationError (code ``q``) for an empty, too long or too busy one."""
    if not isinstance(q, str):
        raise _invalid(_("Type something to search for."))
    q = q.strip()
    if not q:
        raise _invalid(_("Type something to search for."))
    if len(q) > QUERY_MAX_CHARS:
        raise _invalid(
            _("A search can have at most %(max)d characters (this one has %(len)d).")
            % {"max": QUERY_MAX_CHARS, "len": len(q)}
        )
    if text.has_control_character(q):
        raise _invalid(_("A search cannot contain control characters."))
    terms: list[str] = []
    raw: list[str] = []
    authors: list[str] = []
    rooms: list[str] = []
    has_file = False
    count = 0
    for match in _TOKEN.finditer(q):
        key = (match["key"] or "").lower()
        value = match["phrase"] if match["phrase"] is not None else match["word"] or ""
        if not key and value.endswith(":") and value[:-1].lower() in FILTERS:
            key, value = value[:-1].lower(), ""  # "from:" alone, or "from: bob"
        if key and key not in FILTERS:
            # Not a filter ("http://…", "note:"): the whole token is text.
            value, key = match[0].strip('"'), ""
        if not value.strip():
            if key:
                raise _invalid(_("%(key)s: needs a value, e.g. %(key)s:name.") % {"key": key})
            continue  # an empty phrase ""
        count += 1
        if count > QUERY_MAX_TERMS:
            raise _invalid(
                _("A search can have at most %(max)d words, phrases and filters.")
                % {"max": QUERY_MAX_TERMS}
            )
        if key == "from":
            authors.append(value.lstrip("@"))
        elif key == "in":
            rooms.append(value.lstrip("#"))
        elif key == "has":
            if value.lower() not in HAS_VALUES:
                raise _invalid(_("has: can only be has:file."))
            has_file = True
        else:
            folded = fold(value)
            if folded and folded not in terms:
                terms.append(folded)
                raw.append(value)
    if not (terms or authors or rooms or has_file):
        raise _invalid(_("Type something to search for."))
    return Query(
        terms=tuple(terms),
        raw_terms=tuple(raw),
        authors=tuple(authors),
        rooms=tuple(rooms),
        has_file=has_file,
    )


# --- Snippets ---------------------------------------------------------------------------------
def _term_pattern(term: str) -> re.Pattern:
    """A case-insensitive pattern for ``term`` in the original text; "е" also matches "ё"
    (as ``fold`` does). Other fold differences (NFKC forms, "ß"/"ss") are simply not
    highlighted: never a wrong highlight."""
    escaped = re.escape(term).replace("е", "[её]").replace("Е", "[ЕЁ]")
    return re.compile(escaped, re.IGNORECASE)


@dataclass(frozen=True)
class Snippet:
    text: str
    highlights: tuple[tuple[int, int], ...]  # [start, end) offsets into ``text`` (code points)

    @property
    def parts(self) -> list[tuple[str, bool]]:
        """``[(text, marked), …]`` for the template (which escapes each piece)."""
        parts, at = [], 0
        for start, end in self.highlights:
            if start > at:
                parts.append((self.text[at:start], False))
            parts.append((self.text[start:end], True))
            at = end
        if at < len(self.text):
            parts.append((self.text[at:], False))
        return parts


def _find(patterns, source: str) -> int | None:
    starts = [m.start() for p in patterns if (m := p.search(source))]
    return min(starts) if starts else None


_BLOCK_END = re.compile(r"</(?:p|li|blockquote|pre|h[1-6]|tr|td|th)>|<br\s*/?>", re.IGNORECASE)


def plain_text(html_: str) -> str:
    """What a reader sees of a message's stored HTML (its Markdown rendered): the text, tags
    dropped and entities decoded, blocks apart by a space ("**Quokka**" is "Quokka"). Escaped
    again wherever it is shown."""
    return html.unescape(nh3.clean(_BLOCK_END.sub(" ", html_), tags=set()))


def snippet_for(source: str, raw_terms=(), *, limit: int = SNIPPET_CHARS) -> Snippet:
    """At most ``limit`` characters of ``source`` (whitespace collapsed) around the first
    match of any term, with every match of every term inside it highlighted."""
    source = " ".join(source.split())
    patterns = [_term_pattern(t) for t in raw_terms if t]
    first = _find(patterns, source) if patterns else None
    start = 0
    if first is not None and len(source) > limit:
        start = max(0, min(first - SNIPPET_BEFORE, len(source) - limit))
        if start > 0:
            space = source.find(" ", start, first)  # begin at a word when one starts near
            if space != -1 and space - start < 20:
                start = space + 1
    text_ = source[start : start + limit]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + limit < len(source) else ""
    if prefix:
        text_ = prefix + text_
    if suffix:
        text_ = text_.rstrip() + suffix
    spans = sorted(
        (m.start(), m.end()) for p in patterns for m in p.finditer(text_) if m.end() > m.start()
    )
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return Snippet(text=text_, highlights=tuple(merged))


# --- The selector -------------------------------------------------------------------------------
CURSOR = re.compile(r"[0-9]{1,19}")


def cursor_for(message) -> str:
    """A keyset cursor: the message's id (pages are newest first by id)."""
    return str(message.pk)


def parse_cursor(value: object) -> int:
    if not (isinstance(value, str) and CURSOR.fullmatch(value)) or int(value) >= 2**63:
        raise _invalid(_("That is not a search page cursor."), code="before")
    return int(value)


@dataclass
class SearchResult:
    message: object
    snippet: Snippet
    room_title: str
    url: str


@dataclass
class SearchPage:
    query: Query
    results: list[SearchResult] = field(default_factory=list)
    next_cursor: str | None = None


def search_messages(
    *, user, q: str, room_id: int | None = None, before: str | None = None, limit: int | None = None
) -> SearchPage:
    """The messages ``user`` may see that match ``q``, newest first, ``limit`` per page
    (``PARLEY_SEARCH_PAGE_SIZE``), after the keyset cursor ``before``.

    ValidationError for a bad query or cursor; ``RoomNotFound`` when ``room_id`` names a room
    the user may not see (a hidden room and a missing one alike); RateLimited past
    ``PARLEY_SEARCH_RATE``. Costs a fixed number of queries per page: the messages with their
    authors, profiles and rooms (one statement; the visible rooms are a subquery of it), the
    room for ``room_id``, the rooms ``in:`` names, and at most one each for the file names
    and the direct conversations' participants on the page."""
    from . import selectors
    from .errors import RoomNotFound
    from .models import Attachment, Message, Room

    query = parse(q)
    cursor = parse_cursor(before) if before not in (None, "") else None
    limit = limit or settings.PARLEY_SEARCH_PAGE_SIZE
    count, window = settings.PARLEY_SEARCH_RATE
    try:
        ratelimit.hit(key=f"search:{user.pk}", limit=count, window=window)
    except RateLimited as exc:
        exc.message = _("You are searching too fast. Try again in %(s)d s.") % {
            "s": exc.retry_after
        }
        raise
    rooms = Room.objects.visible_to(user)
    if room_id is not None:
        if not rooms.filter(pk=room_id).exists():
            raise RoomNotFound
        rooms = rooms.filter(pk=room_id)
    if query.rooms:
        # Matched with ``fold`` in Python: SQLite's LIKE/lower() fold ASCII only.
        wanted = {fold(name) for name in query.rooms}
        ids = [
            pk
            for pk, name in rooms.exclude(name="").values_list("pk", "name")
            if fold(name) in wanted
        ]
        rooms = rooms.filter(pk__in=ids)
    messages = Message.objects.filter(room__in=rooms.values("pk"), deleted_at__isnull=True).exclude(
        search_text=""
    )
    for term in query.terms:
        messages = messages.filter(search_text__contains=term)  # LIKE, wildcards escaped
    if query.authors:
        by = Q()
        for name in query.authors:
            by |= Q(username__iexact=name)
        messages = messages.filter(author__in=get_user_model().objects.filter(by).values("pk"))
    if query.has_file:
        messages = messages.filter(has_attachments=True)
    if cursor is not None:
        messages = messages.filter(pk__lt=cursor)
    # Newest first by id. PostgreSQL's estimate of how many rows a LIKE matches (from the
    # column's statistics) picks the plan: for a rare term, the trigram index's matches,
    # sorted (a few ms at 1M messages); for a common one, the primary key walked backwards
    # until the page is full (under a ms). Ordering by created_at (no index) made every
    # common term sort all its matches: 0.5-1.3 s at 1M (README, "Search"; bench S14).
    page = list(messages.select_related("author__profile", "room").order_by("-pk")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    files: dict[int, list[str]] = {}
    with_files = [m.pk for m in page if m.has_attachments]
    if with_files:
        for message_id, name in (
            Attachment.objects.filter(message_id__in=with_files)
            .order_by("position", "pk")
            .values_list("message_id", "name")
        ):
            files.setdefault(message_id, []).append(name)
    _load_dm_members([m.room for m in page])
    results = []
    for message in page:
        source = plain_text(message.html) if message.html else message.body
        names = files.get(message.pk, [])
        if names and (not source or _find(map(_term_pattern, query.raw_terms), source) is None):
            source = " · ".join(names) if not source else f"{source} · {' · '.join(names)}"
        results.append(
            SearchResult(
                message=message,
                snippet=snippet_for(source, query.raw_terms),
                room_title=selectors.room_title_for(room=message.room, user=user),
                url=message_url(message),
            )
        )
    next_cursor = cursor_for(page[-1]) if more and page else None
    return SearchPage(query=query, results=results, next_cursor=next_cursor)


def message_url(message) -> str:
    """The room page opened at ``message`` (``?around=<seq>``), scrolled to it."""
    return url_at(message.room_id, message.seq, message.pk)


def url_at(room_id: int, seq: int, message_id: int) -> str:
    """``/chat/room/<id>/?around=<seq>#message-<id>``: what a search result, a far reply jump
    and a notification open."""
    base = reverse("chat:room_detail", kwargs={"pk": room_id})
    return f"{base}?around={seq}#message-{message_id}"


def _load_dm_members(rooms) -> None:
    """The participants of the direct conversations among ``rooms`` (their titles), in one
    query for all of them; other rooms are titled by their name."""
    from .models import Membership

    dms = {room.pk: room for room in rooms if room.dm_key is not None}
    if not dms:
        return
    members: dict[int, list] = {pk: [] for pk in dms}
    for membership in Membership.objects.filter(room_id__in=list(dms)).select_related(
        "user__profile"
    ):
        members[membership.room_id].append(membership)
    for room in rooms:
        if room.pk in members:
            room.member_list = members[room.pk]
