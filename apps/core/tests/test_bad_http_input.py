"""Invalid UTF-8 anywhere in a request, and a foreign Host, get a clean 4xx and at most one
WARNING line: no traceback, no ERROR (item 6d of #8). Checked through the full ASGI
application (what uvicorn and daphne run) and through Django's test client."""

import logging
from urllib.parse import unquote

import pytest

from project.asgi import application

from .asgi_http import asgi_request, http_scope

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "/accounts/login/"
CSRF_COOKIE = (b"cookie", b"csrftoken=abcdefghijklmnopqrstuvwxyzABCDEF")
MULTIPART = (
    b'--b\r\nContent-Disposition: form-data; name="\xff"\r\n\r\n\xfe\r\n'
    b'--b\r\nContent-Disposition: form-data; name="login"; filename="\xff.txt"\r\n\r\n\xff\r\n'
    b'--b\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n\xff\xfe\r\n'
    b"--b--\r\n"
)
URLENCODED = b"login=\xff\xfe&password=%ff%fe&csrfmiddlewaretoken=\xc3\x28"

CASES = {
    # Servers percent-decode the path with errors="replace" (uvicorn, daphne, hypercorn).
    "path": dict(path=unquote("/%ff%fe/"), raw_path=b"/%ff%fe/"),
    "path, raw bytes": dict(path="/\ufffd/", raw_path=b"/\xff/"),
    "query string, raw bytes": dict(path=LOGIN, query_string=b"next=\xff\xfe"),
    "query string, percent-encoded": dict(path=LOGIN, query_string=b"next=%ff%fe"),
    "cookie": dict(path=LOGIN, headers=[(b"cookie", b"sessionid=\xff\xfe; csrftoken=\xc3\x28")]),
    "headers": dict(path=LOGIN, headers=[(b"accept-language", b"\xff"), (b"x-name", b"\xfe")]),
    "foreign host": dict(path=LOGIN, headers=[(b"host", b"evil.example")]),
    "host, invalid UTF-8": dict(path=LOGIN, headers=[(b"host", b"\xff\xfe.example")]),
    "form body": dict(
        method="POST",
        path=LOGIN,
        headers=[CSRF_COOKIE, (b"content-type", b"application/x-www-form-urlencoded")],
        body=URLENCODED,
    ),
    "multipart body": dict(
        method="POST",
        path=LOGIN,
        headers=[CSRF_COOKIE, (b"content-type", b"multipart/form-data; boundary=b")],
        body=MULTIPART,
    ),
    "multipart, broken boundary": dict(
        method="POST",
        path=LOGIN,
        headers=[CSRF_COOKIE, (b"content-type", b"multipart/form-data; boundary=\xff")],
        body=MULTIPART,
    ),
}


def _assert_quiet(caplog) -> None:
    loud = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not loud, [(r.name, r.levelname, r.getMessage()) for r in loud]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
async def test_bad_bytes_get_a_4xx_or_a_page_and_no_traceback(case, caplog):
    caplog.set_level(logging.INFO)
    spec = dict(CASES[case])
    body = spec.pop("body", b"")
    headers = list(spec.pop("headers", []))
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
    response = await asgi_request(application, http_scope(headers=headers, **spec), [body])
    assert response["status"] < 500
    if "host" in case:
        assert response["status"] == 400
    _assert_quiet(caplog)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) <= 1


@pytest.mark.parametrize("host", ["evil.example", "ÿþ.example", "a b"])
def test_a_foreign_host_through_the_test_client_is_one_warning_line(client, caplog, host):
    caplog.set_level(logging.INFO)
    response = client.get(LOGIN, HTTP_HOST=host)
    assert response.status_code == 400
    _assert_quiet(caplog)
    [record] = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelno == logging.WARNING
    assert "Invalid HTTP_HOST header" in record.getMessage()


def test_every_django_security_logger_drops_tracebacks():
    """Django names a security logger after each SuspiciousOperation subclass; a subclass
    missing from settings.LOGGING would log tracebacks again."""
    from django.core.exceptions import SuspiciousOperation

    from apps.core.log_filters import ClientErrorFilter

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    names = {"SuspiciousOperation", *(cls.__name__ for cls in subclasses(SuspiciousOperation))}
    for name in names:
        logger = logging.getLogger(f"django.security.{name}")
        assert any(isinstance(f, ClientErrorFilter) for f in logger.filters), name


def test_server_errors_keep_their_traceback():
    """Only 4xx records are trimmed: a real 500 still logs at ERROR with its traceback."""
    logger = logging.getLogger("django.request")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "Internal Server Error: %s",
            ("/",),
            sys.exc_info(),
            extra={"status_code": 500},
        )
    assert all(f.filter(record) for f in logger.filters)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
