"""Markdown in, sanitized HTML out: what a message may format, and what can never get through."""

from html.parser import HTMLParser

import pytest

from apps.chat.formatting import first_line, render_markdown


@pytest.mark.parametrize(
    "source, html",
    [
        ("**b** _i_ ~~s~~ `c`", "<p><strong>b</strong> <em>i</em> <s>s</s> <code>c</code></p>"),
        ("one\ntwo", "<p>one<br>\ntwo</p>"),
        ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>"),
        ("- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>"),
        ("```\n<b>x</b>\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>"),
        ("# not a heading", "<p># not a heading</p>"),
    ],
)
def test_the_markdown_subset(source, html):
    assert render_markdown(source) == html


def test_links_open_in_a_new_tab_without_referrer():
    html = render_markdown("see [docs](https://example.com/a?b=1&c=2) or https://python.org")
    assert html.count('target="_blank"') == 2
    assert html.count('rel="noopener noreferrer nofollow"') == 2
    assert 'href="https://example.com/a?b=1&amp;c=2"' in html
    assert 'href="https://python.org"' in html


@pytest.mark.parametrize(
    "source",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox)",
        '<a href="https://x" onclick="a()" hx-get="/steal" id="composer" class="x" style="x">y</a>',
        "![img](https://tracker.example/pixel.png)",
        "<svg onload=alert(1)>",
        '[titled](https://example.com "a title")',
        "[relative](/accounts/logout/) [scheme-less](//evil.example/x)",
    ],
)
def test_nothing_active_survives(source):
    """Whatever the source, the output has only allowed tags and attributes, and links only
    to http(s) or mailto (text that merely reads like markup is escaped, which is fine)."""
    found = _Elements()
    found.feed(render_markdown(source))
    assert found.tags <= {"p", "a", "br", "strong", "em", "code"}, found.tags
    assert found.attributes <= {"href", "target", "rel"}, found.attributes
    assert all(href.startswith(("http://", "https://", "mailto:")) for href in found.hrefs)
    assert not any(href.startswith("//") for href in found.hrefs)


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.hrefs = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name == "href":
                self.hrefs.append(value)


def test_a_reply_preview_is_the_first_non_empty_line_cut():
    assert first_line("\n\n  hello there  \nsecond") == "hello there"
    assert first_line("x" * 200, limit=10) == "xxxxxxxxx…"
