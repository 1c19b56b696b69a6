"""Message formatting: a Markdown subset, rendered once when a message is saved or edited and
stored as HTML (history pages never re-parse).

markdown-it-py parses (raw HTML off, so ``<b>`` stays text), then nh3 (ammonia) sanitizes
what it produced against a short allow-list — the parser is not trusted to be the last line of
defence. What survives: bold, italic, strikethrough, inline code, code blocks, block quotes,
lists, line breaks and links; links only to http(s) and mailto, opening in a new tab with
``rel="noopener noreferrer nofollow"``. No ``id``, ``class``, ``style``, ``on*`` or ``hx-*``
attribute survives, so message HTML cannot hook into the page or into htmx."""

from functools import cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
}  # fmt: skip
# "*": nothing on every tag (nh3 would otherwise keep generic ones such as title and lang).
ALLOWED_ATTRIBUTES = {"*": set(), "a": {"href"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"

# Block and inline rules a chat message does not need: headings would shout, images would load
# third-party content, reference definitions silently swallow a line, tables and rules add
# little. Their source stays visible as text.
_DISABLED_RULES = ["heading", "lheading", "hr", "reference", "image", "html_block", "html_inline"]


@cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True})
    md.enable(["strikethrough", "linkify"])
    md.disable(_DISABLED_RULES)
    return md


def render_markdown(source: str) -> str:
    """The sanitized HTML of a message body (which has passed the text rule already)."""
    html = _parser().render(source)
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
