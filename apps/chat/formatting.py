"""Message formatting: a Markdown subset, rendered once when a message is saved or edited and
stored as HTML (history pages never re-parse).

markdown-it-py parses (raw HTML off, so ``<b>`` stays text), then nh3 (ammonia) sanitizes
what it produced against a short allow-list — the parser is not trusted to be the last line of
defence. What survives: bold, italic, strikethrough, inline code, code blocks, block quotes,
lists, line breaks, links and mentions; links only to http(s) and mailto, opening in a new tab
with ``rel="noopener noreferrer nofollow"``; a ``span`` keeps only ``data-mention`` (and raw
HTML is text, so only the renderer below writes one). No ``id``, ``class``, ``style``, ``on*``
or ``hx-*`` attribute survives, so message HTML cannot hook into the page or into htmx.

Mentions: ``@username`` and ``@room`` in ordinary text (not in code spans or blocks, not in a
link, not after a letter, ``@`` or ``.`` as in an e-mail address, not escaped as ``\\@``) are
found by a core rule of the parser. The caller resolves the names it found with one query
(``render_message(resolve=...)``) and the renderer writes each resolved one as
``<span data-mention="<user id>">@username</span>`` (``data-mention="room"`` for @room);
a name that resolves to nobody stays plain text."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
}  # fmt: skip
# "*": nothing on every tag (nh3 would otherwise keep generic ones such as title and lang).
ALLOWED_TAGS |= {"span"}  # mentions only: a span keeps nothing but data-mention
ALLOWED_ATTRIBUTES = {"*": set(), "a": {"href"}, "ol": {"start"}, "span": {"data-mention"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"

# Block and inline rules a chat message does not need: headings would shout, images would load
# third-party content, reference definitions silently swallow a line, tables and rules add
# little. Their source stays visible as text.
_DISABLED_RULES = ["heading", "lheading", "hr", "reference", "image", "html_block", "html_inline"]


# "@" + a username (Django's characters: letters, digits, _ . + -), not preceded by a word
# character, "@" or "." (so "bob@example.com" and "a.@b" mention nobody). Trailing dots are
# the sentence's, not the name's.
MENTION_RE = re.compile(r"(?<![\w@.])@([\w.+-]+)")
ROOM = "room"  # @room: every member of the room (a username "room" is reserved at sign-up)
MAX_MENTION_NAMES = 500  # distinct names looked up per message (a 4000-character body bounds it)

# (names in lower case) -> {lower name: (user id, username)}: who those names are here.
Resolver = Callable[[list[str]], Mapping[str, tuple[int, str]]]


@dataclass(frozen=True)
class Rendered:
    html: str
    mention_ids: list[int]  # ascending, each once
    mentions_room: bool


def _mention_rule(state: StateCore) -> None:
    """Split text tokens (outside links) at mentions: text + ``mention`` + text. Runs after
    linkify, before text_join (so an escaped ``\\@`` is still a text_special token)."""
    names: dict[str, None] = state.env.setdefault("mention_names", {})
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        in_link = 0
        previous = ""  # the character before the current text token, if it is text
        for token in block.children:
            if token.type == "link_open":
                in_link += 1
            elif token.type == "link_close":
                in_link -= 1
            if token.type != "text" or in_link or "@" not in token.content:
                children.append(token)
                previous = token.content[-1:] if token.type in ("text", "text_special") else ""
                continue
            children.extend(_split_mentions(token, previous, names))
            previous = token.content[-1:]
        block.children = children


def _split_mentions(token: Token, previous: str, names: dict[str, None]) -> list[Token]:
    content = token.content
    parts: list[Token] = []
    position = 0
    for match in MENTION_RE.finditer(content):
        start = match.start()
        if start == 0 and previous and (previous.isalnum() or previous in "_@."):
            continue  # glued to the text token before it (the lookbehind cannot see it)
        name = match.group(1).rstrip(".")
        if not name:
            continue
        end = start + 1 + len(name)
        if start > position:
            parts.append(_text(content[position:start]))
        mention = Token("mention", "", 0)
        mention.content = name
        mention.meta = {"name": name.lower()}
        parts.append(mention)
        if len(names) < MAX_MENTION_NAMES or name.lower() in names:
            names[name.lower()] = None
        position = end
    if not parts:
        return [token]
    if position < len(content):
        parts.append(_text(content[position:]))
    return parts


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _render_mention(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    name = token.meta["name"]
    if name == ROOM:
        env["mentioned_room"] = True
        return '<span data-mention="room">@room</span>'
    found = env.get("mention_resolved", {}).get(name)
    if found is None:
        return escapeHtml("@" + token.content)
    user_id, username = found
    env["mentioned_ids"].add(user_id)
    return f'<span data-mention="{int(user_id)}">@{escapeHtml(username)}</span>'


@cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    md.enable(["strikethrough", "linkify"])
    md.disable(_DISABLED_RULES)
    md.core.ruler.after("linkify", "mention", _mention_rule)
    md.add_render_rule("mention", _render_mention)
    return md


def mention_names(source: str) -> list[str]:
    """The distinct names (lower case) the body mentions, @room included as "room"."""
    if "@" not in source:
        return []
    env: dict = {}
    _parser().parse(source, env)
    return list(env.get("mention_names", {}))


def render_message(source: str, *, resolve: Resolver | None = None) -> Rendered:
    """The sanitized HTML of a message body (which has passed the text rule already), with
    its mentions: ``resolve`` is called once, only when the body mentions someone other than
    @room, with the names in lower case."""
    md = _parser()
    env: dict = {"mentioned_ids": set()}
    tokens = md.parse(source, env)
    names = [name for name in env.get("mention_names", {}) if name != ROOM]
    if names and resolve is not None:
        env["mention_resolved"] = dict(resolve(names))
    html = md.renderer.render(tokens, md.options, env)
    return Rendered(
        html=_sanitize(html),
        mention_ids=sorted(env["mentioned_ids"]),
        mentions_room=bool(env.get("mentioned_room")),
    )


def render_markdown(source: str, *, resolve: Resolver | None = None) -> str:
    """The sanitized HTML of a message body; without ``resolve`` only @room is a mention."""
    return render_message(source, resolve=resolve).html


def _sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_relative="deny",  # "/accounts/…", "//elsewhere.example": no link
        strip_comments=True,
    ).strip()


def first_line(source: str, *, limit: int = 120) -> str:
    """A one-line plain-text preview (a reply's quote): the first non-empty line, cut."""
    for line in source.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""
