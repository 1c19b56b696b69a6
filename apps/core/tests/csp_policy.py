"""The Content-Security-Policy the tests expect, written out by hand (not read from settings, so
a change to the policy has to change this file too), and a parser for the header. Shared by
the unit tests (apps/chat/tests/test_csp.py) and the browser tests (e2e/test_csp.py)."""

REPORT_URL = "/csp-report/"

# The whole policy, directive by directive ("nonce" stands for this response's nonce).
EXPECTED = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "nonce"],
    "style-src": ["'self'", "nonce"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "report-uri": [REPORT_URL],
}


def parse_policy(header: str) -> tuple[dict[str, list[str]], str | None]:
    """{directive: sources} with the nonce source replaced by "nonce", and the nonce."""
    directives, nonce = {}, None
    for part in header.split(";"):
        name, *sources = part.split()
        for i, source in enumerate(sources):
            if source.startswith("'nonce-"):
                nonce = source[len("'nonce-") : -1]
                sources[i] = "nonce"
        directives[name] = sources
    return directives, nonce
